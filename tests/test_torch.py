import pytest
import torch

from he2rna_sklearn._torch import cpu_supports_bf16, resolve_device, resolve_precision


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
