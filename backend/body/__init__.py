"""The SMPL body: model files from a user-given folder, pose fitting to joints, skinned meshes and mesh export."""
