#!/usr/bin/env bash
# Real third-party test material from Debian: CMU motion-capture BVH files (assimp-testmodels).
# Tests that need it skip with a reason when it is absent.
if [ -d /usr/share/assimp/models/BVH ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq assimp-testmodels; } >/dev/null; then
    echo "could not install assimp-testmodels; the CMU BVH tests will be skipped" >&2
fi
exit 0
