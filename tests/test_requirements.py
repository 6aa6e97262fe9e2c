"""The two PyTorch install paths (requirements/) pin the same releases."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "requirements"


def _pins(name):
    lines = (ROOT / name).read_text().splitlines()
    pins = dict(re.match(r"^([a-z]+)==(\S+)$", line).groups() for line in lines if "==" in line)
    options = [line for line in lines if line.startswith("--")]
    return pins, options


def test_cpu_path_pins_the_cpu_builds_of_the_same_releases():
    default, _ = _pins("torch.txt")
    cpu, options = _pins("torch-cpu.txt")
    assert set(default) == set(cpu) == {"torch", "torchvision"}
    for name, version in default.items():
        assert cpu[name] == f"{version}+cpu"  # "+cpu": no silent fall back to CUDA builds
    assert options == [
        "--index-url https://download.pytorch.org/whl/cpu",
        "--extra-index-url https://pypi.org/simple",
    ]


def test_comments_name_the_pinned_torch():
    text = (ROOT / "torch.txt").read_text()
    pins, _ = _pins("torch.txt")
    named = set(re.findall(r"torch (\d+\.\d+(?:\.\d+)?)", text))
    assert named and all(pins["torch"].startswith(v) for v in named), named
