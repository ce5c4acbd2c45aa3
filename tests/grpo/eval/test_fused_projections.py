"""grpo.eval.fused_projections: the same outputs with one product per stacked projection, the views that keep
writes to the parameters visible, and every refusal leaving the model as it was."""

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

from grpo.eval import fused_projections
from grpo.eval.fused_projections import fuse_projections, is_fused, unfuse_projections
from grpo.eval.static_decode import decode
from tests.grpo.eval.static_decode_checks import PROMPTS, encode, greedy_generate, sharpened_model


def _frozen(model):
    return model.eval().requires_grad_(False)


@pytest.fixture()
def llama(tiny_model_dir):
    return _frozen(sharpened_model(tiny_model_dir)[0])


@pytest.fixture()
def qwen2():
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    model = _frozen(Qwen2ForCausalLM(config))
    for layer in model.model.layers:  # Qwen2's q/k/v biases start at zero; give them values so stacking them counts
        for name in ("q_proj", "k_proj", "v_proj"):
            getattr(layer.self_attn, name).bias.normal_()
    return model


def _fused_modules(model) -> int:
    return sum(fused_projections._fused_here(m) for m in model.modules())


def _logits(model, ids):
    return model(input_ids=ids, use_cache=False).logits


IDS = torch.tensor([[5, 17, 42, 99, 3, 250, 7, 61, 8]])


@pytest.mark.parametrize("name", ["llama", "qwen2"])
def test_fused_model_computes_what_the_model_does(name, request):
    model = request.getfixturevalue(name)
    plain = copy.deepcopy(model)
    assert fuse_projections(model) is None
    assert _fused_modules(model) == 4  # two layers: attention and MLP each
    torch.testing.assert_close(_logits(model, IDS), _logits(plain, IDS), rtol=1e-5, atol=1e-5)
    assert model.state_dict().keys() == plain.state_dict().keys()  # the buffers are not persistent


def test_greedy_decoding_is_token_identical(llama, tiny_model_dir):
    _, tokenizer = sharpened_model(tiny_model_dir)
    encoded = encode(tokenizer, PROMPTS)
    plain = copy.deepcopy(llama)
    assert fuse_projections(llama) is None
    expected = greedy_generate(plain, encoded, 24, [], tokenizer.pad_token_id)
    fused = decode(llama, encoded["input_ids"], encoded["attention_mask"], 24, [], tokenizer.pad_token_id,
                   runner="eager")
    assert torch.equal(fused, expected)
    assert len({tuple(row.tolist()) for row in fused}) == len(PROMPTS)  # context-dependent tokens, not one repeated


def test_writes_to_a_parameter_reach_the_fused_product(llama):
    """What MergedCopy.refresh does: copy_ into the projection's own Parameter object."""
    plain = copy.deepcopy(llama)
    assert fuse_projections(llama) is None
    with torch.no_grad():
        for model in (llama, plain):
            model.model.layers[0].self_attn.k_proj.weight.mul_(3.0)
            model.model.layers[1].mlp.up_proj.weight.add_(0.5)
    torch.testing.assert_close(_logits(llama, IDS), _logits(plain, IDS), rtol=1e-5, atol=1e-5)


def test_parameters_given_new_storage_are_fused_again(llama):
    """As after ``model.to(...)``: the parameters no longer view the stacked weight, which would go stale."""
    assert fuse_projections(llama) is None
    attention = llama.model.layers[0].self_attn
    with torch.no_grad():
        attention.v_proj.weight.data = attention.v_proj.weight.data.clone() * 2.0
    plain = copy.deepcopy(llama)
    unfuse_projections(plain)
    assert fuse_projections(llama) is None
    torch.testing.assert_close(_logits(llama, IDS), _logits(plain, IDS), rtol=1e-5, atol=1e-5)


def test_a_cast_model_written_to_is_right_once_fused_again(llama):
    plain = copy.deepcopy(llama)
    assert fuse_projections(llama) is None
    for model in (llama, plain):
        model.to(torch.float64)
        with torch.no_grad():
            model.model.layers[1].mlp.gate_proj.weight.mul_(-2.0)
    assert fuse_projections(llama) is None and is_fused(llama)
    torch.testing.assert_close(_logits(llama, IDS), _logits(plain, IDS), rtol=1e-9, atol=1e-9)


def test_an_adapter_wrapped_around_fused_projections_unfuses_them_when_checked(llama):
    """A LoRA layer added after fusing would be bypassed by the fused product; checking again undoes the fusion."""
    from peft import LoraConfig, get_peft_model

    plain = copy.deepcopy(llama)
    assert fuse_projections(llama) is None
    adapted = []
    for model in (llama, plain):
        torch.manual_seed(1)
        adapted.append(get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "up_proj"],
                                                        init_lora_weights=False)).eval())
    reason = fuse_projections(adapted[0])
    assert reason is not None and "not all plain nn.Linear" in reason
    assert not is_fused(adapted[0])
    torch.testing.assert_close(_logits(adapted[0], IDS), _logits(adapted[1], IDS), rtol=1e-5, atol=1e-5)


def test_unfuse_gives_the_class_forward_back(llama):
    assert fuse_projections(llama) is None
    unfuse_projections(llama)
    assert _fused_modules(llama) == 0
    assert not any(name.startswith("fused_") for module in llama.modules() for name in module._buffers)


def _refused(model, fragment: str) -> None:
    before = {name: t.data_ptr() for name, t in model.named_parameters()}
    reason = fuse_projections(model)
    assert reason is not None and fragment in reason
    assert _fused_modules(model) == 0
    assert {name: t.data_ptr() for name, t in model.named_parameters()} == before


def test_trainable_weights_are_refused(tiny_model_dir):
    _refused(AutoModelForCausalLM.from_pretrained(tiny_model_dir), "trainable")


def test_lora_layers_are_refused(llama):
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(llama, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    _refused(peft_model, "not all plain nn.Linear")


def test_hooked_projections_are_refused(llama):
    llama.model.layers[1].mlp.gate_proj.register_forward_hook(lambda module, args, output: output)
    _refused(llama, "hooks")


def test_a_forward_patched_by_someone_else_is_refused_and_kept(llama):
    mlp = llama.model.layers[0].mlp
    patched = type(mlp).forward.__get__(mlp)
    mlp.forward = patched
    _refused(llama, "forward set on the instance")
    assert vars(mlp)["forward"] is patched


def _swapped_mlp(self, x):  # gate and up exchanged
    up, gate = torch.nn.functional.linear(x, self.fused_gate_up_weight).chunk(2, dim=-1)
    return self.down_proj(self.act_fn(gate) * up)


def _scaled_attention(self, *args, **kwargs):  # as a differently computing attention would
    output, weights = fused_projections._attention_forward(self, *args, **kwargs)
    return output * 1.5, weights


@pytest.mark.parametrize("wrong", ["fused_gate_up", "fused_qkv"], ids=["mlp", "attention"])
def test_a_fused_forward_that_computes_otherwise_is_undone(llama, monkeypatch, wrong):
    """A transformers version whose attention differs from the copied one must not decode wrongly."""
    stand_in = _swapped_mlp if wrong == "fused_gate_up" else _scaled_attention
    table = fused_projections._supported()
    patched = {cls: (p, prefix, stand_in if prefix == wrong else forward) for cls, (p, prefix, forward) in table.items()}
    monkeypatch.setattr(fused_projections, "_supported", lambda: patched)
    plain = copy.deepcopy(llama)
    reason = fuse_projections(llama)
    assert reason is not None and "computes differently" in reason
    assert _fused_modules(llama) == 0
    torch.testing.assert_close(_logits(llama, IDS), _logits(plain, IDS))
