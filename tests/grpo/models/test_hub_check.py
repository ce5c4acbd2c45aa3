"""model.name that is a Hub id: a typo or no network is one line, decided in about a second."""

from __future__ import annotations

import time

import httpx
import pytest
from huggingface_hub.errors import RepositoryNotFoundError

from grpo.models import hub_check
from grpo.config import ConfigError


class Api:
    def __init__(self, error):
        self.error = error

    def model_info(self, name, timeout):
        assert timeout == hub_check.TIMEOUT_SECONDS  # one short request, no retries
        raise self.error


@pytest.mark.parametrize(("error", "message"), [
    (httpx.ConnectError("Name or service not known"), "the Hub could not be reached \\(ConnectError\\)"),
    (RepositoryNotFoundError("404", response=httpx.Response(404, request=httpx.Request("GET", "https://x"))),
     "the Hub has no such model"),
])
def test_unreachable_or_unknown_hub_model_is_one_line(monkeypatch, error, message):
    monkeypatch.setattr("huggingface_hub.HfApi", lambda: Api(error))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=message) as caught:
        hub_check.check_model_name("HuggingFaceTB/SmolLM2-135M-Instruc")
    assert time.perf_counter() - started < 1.0
    assert "\n" not in str(caught.value) and "not in the Hugging Face cache" in str(caught.value)


def test_offline_is_decided_without_a_request(monkeypatch):
    monkeypatch.setattr("huggingface_hub.HfApi", lambda: pytest.fail("no request when HF_HUB_OFFLINE is set"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE is set"):
        hub_check.check_model_name("org/missing-model")


def test_local_folders_and_embedded_names_pass(tiny_model_dir, monkeypatch):
    monkeypatch.setattr("huggingface_hub.HfApi", lambda: pytest.fail("local names need no Hub request"))
    hub_check.check_model_name(str(tiny_model_dir))
    hub_check.check_model_name("smollm2-135m-instruct")
