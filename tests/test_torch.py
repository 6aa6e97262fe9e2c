import numpy as np
import pytest
import torch

from he2rna_sklearn._torch import (
    cpu_supports_bf16,
    resolve_device,
    resolve_precision,
    state_mismatch,
)


def test_auto_device_is_cpu_without_cuda():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


def test_precision_resolution():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bf16" if cpu_supports_bf16() else "fp32")
    assert resolve_precision("fp32", cpu) == "fp32"
    with pytest.raises(ValueError, match="CUDA"):
        resolve_precision("fp16", cpu)
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("int8", cpu)


@pytest.mark.parametrize("device", ["tpu9", "meta", 3.5])
def test_unknown_device_is_a_value_error(device):
    with pytest.raises(ValueError, match=f"device={device!r} is not"):
        resolve_device(device)


def record_full_builds(monkeypatch, cls, limit=10**5):
    """Record every ``cls`` built off the meta device with a tensor of over ``limit``
    elements (memory really allocated); returns the list it fills."""
    built = []
    original = cls.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        big = [t for t in self.state_dict().values() if t.numel() > limit]
        if any(t.device.type != "meta" for t in big):
            built.append(type(self).__name__)

    monkeypatch.setattr(cls, "__init__", init)
    return built


def test_build_checked_refuses_a_config_beyond_its_weights_before_allocating(monkeypatch):
    from he2rna_sklearn._torch import (
        ModuleConfigError,
        build_checked,
        module_state,
        rebuild_module,
    )

    lin = torch.nn.Linear(3, 4)
    lin.config = {"in_features": 3, "out_features": 4}
    saved = module_state(lin)
    build = lambda c: torch.nn.Linear(**c)  # noqa: E731
    assert rebuild_module(build, saved).weight.shape == (4, 3)
    built = record_full_builds(monkeypatch, torch.nn.Linear)
    saved["config"] = {"in_features": 3, "out_features": 10**6}
    match = r"m.skops do not fit its config: .*weight \(4, 3\) \(the config makes \(10+, 3\)\)"
    with pytest.raises(ModuleConfigError, match=match + ".*nothing was built") as err:
        rebuild_module(build, saved, source="m.skops")
    assert "\n" not in str(err.value) and built == []
    with pytest.raises(ValueError, match="config does not fit"):
        build_checked(build, {"in_features": -1, "out_features": 2}, {}, "x")
    with pytest.raises(ValueError, match="not a mapping"):
        build_checked(build, [3, 4], {}, "x")


def test_state_mismatch_lists_missing_unexpected_and_misshapen_tensors():
    own = {"a": torch.zeros(2, 3), "b": torch.zeros(4), "d": torch.zeros(())}
    state = {"b": torch.zeros(5), "c": torch.zeros(1), "d": torch.zeros(())}
    assert state_mismatch(own, state) == (["a"], ["c"], ["b (5,) (expected (4,))"])
    shapes = {"a": (2, 3), "b": np.zeros(5).shape, "d": ()}  # shapes instead of tensors
    assert state_mismatch(own, shapes, expected="the config makes") == (
        [],
        [],
        ["b (5,) (the config makes (4,))"],
    )
    assert state_mismatch(own, own) == ([], [], [])
