"""Registries map config names to classes; mistakes are reported with what is registered."""
import pytest

from allinone.registry import Registry


def test_register_and_build_by_name():
    reg = Registry("THINGS")

    @reg.register()
    class Box:
        def __init__(self, size, color="red"):
            self.size, self.color = size, color

    box = reg.build({"name": "Box", "size": 3}, color="blue")
    assert (box.size, box.color) == (3, "blue")
    assert "Box" in reg and list(reg) == ["Box"] and len(reg) == 1


def test_register_under_an_alias_and_as_a_call():
    reg = Registry("THINGS")

    class Thing:
        pass

    reg.register(Thing)
    reg.register(Thing, name="CFP_FF")
    assert reg.get("Thing") is Thing and reg.get("CFP_FF") is Thing


def test_unknown_name_lists_the_registered_ones():
    reg = Registry("THINGS")
    reg.register(type("Alpha", (), {}))
    with pytest.raises(KeyError, match="Alpha"):
        reg.get("Beta")


def test_a_name_cannot_be_taken_twice():
    reg = Registry("THINGS")
    reg.register(type("A", (), {}))
    with pytest.raises(KeyError, match="already registered"):
        reg.register(type("A", (), {}))


def test_build_needs_a_name_and_reports_bad_arguments():
    reg = Registry("THINGS")

    @reg.register()
    class Box:
        def __init__(self, size):
            self.size = size

    with pytest.raises(KeyError, match="name"):
        reg.build({"size": 1})
    with pytest.raises(TypeError, match="Box"):
        reg.build({"name": "Box", "colour": 1})
