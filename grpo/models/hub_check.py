"""A ``model.name`` that is neither a local folder nor an embedded name is a Hub id: check it in about a second
(local cache first, then one short Hub request without retries), so a typo or a missing network is one line, not
a minute of download retries ending in a long traceback."""

from __future__ import annotations

from pathlib import Path

from grpo.config import ConfigError
from grpo.models.embedded import is_embedded

TIMEOUT_SECONDS = 1.0


def check_model_name(name: str) -> None:
    """Raise ConfigError saying what was looked for, where, and what to do, when the model cannot be loaded."""
    import httpx
    from huggingface_hub import HfApi, constants, try_to_load_from_cache
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    if Path(name).expanduser().exists() or is_embedded(name) or name.endswith(".gguf"):
        return  # local files and embedded names are checked where they are resolved
    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return
    where = f"not a local path, not an embedded name, not in the Hugging Face cache ({constants.HF_HUB_CACHE})"
    if constants.HF_HUB_OFFLINE:
        raise ConfigError(f"model.name: {name!r} is {where}, and HF_HUB_OFFLINE is set; download it first or "
                          "give a local folder")
    try:
        HfApi().model_info(name, timeout=TIMEOUT_SECONDS)
    except RepositoryNotFoundError:
        raise ConfigError(f"model.name: {name!r} is {where}, and the Hub has no such model (or it is private: "
                          "log in with `hf auth login`); check the spelling") from None
    except (HfHubHTTPError, httpx.HTTPError, OSError) as err:
        raise ConfigError(f"model.name: {name!r} is {where}, and the Hub could not be reached "
                          f"({type(err).__name__}); connect, or download it and give a local folder") from None
