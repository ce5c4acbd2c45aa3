"""The static decode loop's ``graph`` runner on CUDA (marked `gpu`; skipped without CUDA): the eager step captured by
hand into one CUDA graph, replayed once per token. It must decode exactly what the eager step decodes (the same
kernels, so the same tokens for the same random draws, greedy or sampled), capture again for a new batch size and
when the weights move to new memory, and stop as the other runners stop. The sampling distribution, the absence of
host syncs and the rollouts' weights updated in place are tested for both runners that replay a CUDA graph in
test_static_decode_cuda.py.

Run on the device machine: `python3 -m pytest -m gpu tests/gpu -q`.
"""

from __future__ import annotations

import pytest
import torch

from grpo.eval.static_decode import Sampling, StaticDecoder
from tests.grpo.eval.static_decode_checks import (PROMPTS, check_lagged_stop, encode, greedy_generate,
                                                  sharpened_model, stopping_eos)

pytestmark = pytest.mark.gpu
NEW = 16


@pytest.fixture
def cuda_model(tiny_model_dir):
    return sharpened_model(tiny_model_dir, "cuda")


def test_graph_greedy_tokens_equal_generate_over_calls_and_batch_sizes(cuda_model):
    """Greedy tokens equal ``model.generate``'s with eos ids that end some rows early; a second call with other rows
    replays the same graph (no new capture), and a smaller batch captures a new one."""
    model, tokenizer = cuda_model
    pad = tokenizer.pad_token_id
    encoded = encode(tokenizer, PROMPTS, "cuda")
    free = greedy_generate(model, encoded, NEW, [], pad)
    eos = stopping_eos(free)[0]
    decoder = StaticDecoder(model, encoded["input_ids"].shape[1] + NEW + 8, NEW, eos, pad, sync_every=4,
                            runner="graph")
    assert torch.equal(decoder(encoded["input_ids"], encoded["attention_mask"]),
                       greedy_generate(model, encoded, NEW, eos, pad))
    graph = decoder._graph
    other = encode(tokenizer, PROMPTS[::-1], "cuda")  # same padded width, other rows
    assert torch.equal(decoder(other["input_ids"], other["attention_mask"]),
                       greedy_generate(model, other, NEW, eos, pad))
    assert decoder._graph is graph
    fewer = encode(tokenizer, PROMPTS[:2], "cuda")
    assert torch.equal(decoder(fewer["input_ids"], fewer["attention_mask"]),
                       greedy_generate(model, fewer, NEW, eos, pad))
    assert decoder._graph is not graph


def test_graph_sampling_draws_the_eager_steps_tokens(cuda_model):
    """The same generator seed gives the graph and the eager step the same tokens and log-probabilities: the
    capture's warm-up step must not consume draws, and replaying must not reuse one step's noise."""
    model, tokenizer = cuda_model
    encoded = encode(tokenizer, PROMPTS, "cuda")
    outputs = []
    for runner in ("graph", "eager"):
        decoder = StaticDecoder(model, encoded["input_ids"].shape[1] + NEW, NEW, [tokenizer.eos_token_id],
                                tokenizer.pad_token_id, Sampling(True, 0.8, 0.9, 20), runner=runner, logprobs=True)
        tokens = decoder(encoded["input_ids"], encoded["attention_mask"], torch.Generator("cuda").manual_seed(3))
        outputs.append((tokens, decoder.result_logprobs()))
    assert torch.equal(outputs[0][0], outputs[1][0])
    torch.testing.assert_close(outputs[0][1], outputs[1][1])
    assert len({tuple(row.tolist()) for row in outputs[0][0]}) > 1


def test_graph_loop_stops_one_question_after_every_row_finished(cuda_model):
    model, tokenizer = cuda_model
    check_lagged_stop(model, tokenizer, PROMPTS, NEW, sync_every=3, device="cuda", calls=2, runner="graph")


def test_graph_captures_again_when_the_weights_move(cuda_model):
    """ZeRO-3 gathers the parameters into new memory for each evaluation: a graph that kept reading the old
    addresses would decode from freed memory. Here every parameter moves to a copy and its old memory is kept
    and filled with NaN: the decoder captures again and decodes generate's tokens."""
    model, tokenizer = cuda_model
    pad = tokenizer.pad_token_id
    encoded = encode(tokenizer, PROMPTS, "cuda")
    decoder = StaticDecoder(model, encoded["input_ids"].shape[1] + NEW, NEW, [], pad, runner="graph")
    expected = greedy_generate(model, encoded, NEW, [], pad)
    assert torch.equal(decoder(encoded["input_ids"], encoded["attention_mask"]), expected)
    graph, old = decoder._graph, []
    with torch.no_grad():
        for parameter in model.parameters():
            old.append(parameter.data)
            parameter.data = parameter.data.clone()
            old[-1].fill_(float("nan"))
    assert torch.equal(decoder(encoded["input_ids"], encoded["attention_mask"]), expected)
    assert decoder._graph is not graph
