"""What the sidebar shows, drawn into a recording layout (headless Blender has no window to draw in)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from test_addon_support import add_round, addon, settings, staged_addon  # noqa: F401

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.slow


class Recorder:
    """Stands in for UILayout: keeps every label text, property and operator drawn, in order."""

    def __init__(self, log=None):
        self.log = [] if log is None else log

    def label(self, text="", icon="NONE"):
        self.log.append(("label", text))

    def prop(self, data, name, **kwargs):
        self.log.append(("prop", name))

    def operator(self, idname, **kwargs):
        self.log.append(("operator", idname))
        return SimpleNamespace()

    def template_list(self, *args, **kwargs):
        self.log.append(("list", args[3]))

    def row(self, **kwargs):
        return Recorder(self.log)

    column = box = row


def draw(panel_cls, active_object=None, width=300):
    layout = Recorder()
    context = SimpleNamespace(scene=bpy.context.scene, region=SimpleNamespace(width=width), active_object=active_object)
    panel_cls.draw(SimpleNamespace(layout=layout), context)
    return layout.log


def labels(log):
    return [text for kind, text in log if kind == "label"]


def test_target_panel_offers_a_preview_rig_and_names_the_map(addon):
    log = draw(addon.panel.IRGMOTION_PT_target)
    assert ("operator", "irg_motion.create_preview_rig") in log

    rig = addon.rounds.create_preview_rig()
    log = draw(addon.panel.IRGMOTION_PT_target, active_object=bpy.data.objects[rig])
    assert any(text.startswith("Map: ") for text in labels(log))
    assert ("prop", "rig_map") in log and ("prop", "root_mode") in log
    assert ("prop", "smpl_folder") in log and ("operator", "irg_motion.add_smpl_body") in log  # the SMPL rig only
    mixamo = addon.retarget.blender_io.build_preset_rig("mixamo")
    log = draw(addon.panel.IRGMOTION_PT_target, active_object=mixamo)
    assert ("operator", "irg_motion.add_smpl_body") not in log


def test_rounds_panel_wraps_the_assessment_and_offers_the_choices(addon):
    rig = addon.rounds.create_preview_rig()
    assessment = "The person walks forward but the arms barely swing; " * 4
    add_round(addon, rig, assessment=assessment, instruction="Swing the arms more.")

    log = draw(addon.panel.IRGMOTION_PT_rounds, width=250)

    shown = labels(log)
    assessment_lines = [t for t in shown if "arms barely" in t or t.startswith("Assessment")]
    assert len(assessment_lines) > 2 and all(len(t) <= 40 for t in shown)  # wrapped to the sidebar
    assert "Model's instruction: Swing the arms more." in " ".join(shown)
    for op in ("irg_motion.accept", "irg_motion.reject", "irg_motion.refine"):
        assert ("operator", op) in log


def test_main_panel_shows_the_last_problem(addon):
    settings().message = "Backend not responding at tcp://127.0.0.1:5555; start it with 'irg-motion serve'"
    shown = labels(draw(addon.panel.IRGMOTION_PT_main))
    assert any("not responding" in t for t in shown) and "Not connected" in shown
