"""The merged copy of a LoRA policy that the static loop's rollouts decode with (grpo.train.merged_copy), and the
rollout hook's use of it, on a CPU."""

from __future__ import annotations

import logging

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import GenerationConfig

from grpo.train.merged_copy import MergedCopy, unmergeable_reason
from grpo.train.rollout import StaticLoopRollouts
from tests.grpo.eval.static_decode_checks import PROMPTS, encode, sharpened_model

NEW = 10


def _lora(tiny_model_dir, **settings):
    model, tokenizer = sharpened_model(tiny_model_dir)
    config = {"r": 4, "lora_alpha": 16, "target_modules": "all-linear", "init_lora_weights": False} | settings
    return get_peft_model(model, LoraConfig(**config)).train(), tokenizer


def _logits(model, encoded):
    with torch.no_grad():
        return model(**encoded).logits


def _change_adapter(model):
    """What an optimizer step does to the adapter: its tensors change in place."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.mul_(-1.5)


def _with_trls_fused_head(model):
    """What GRPOTrainer does to the policy (TRL 1.15 and 1.16): its forward replaced on the instance by one that
    calls the original model's bound forward."""
    from trl.trainer.utils import add_fused_lm_head

    add_fused_lm_head(model.get_base_model())
    assert "forward" in vars(model.get_base_model())
    return model


@pytest.mark.parametrize("patched_by_trl", [False, True], ids=["plain", "trl_fused_head"])
def test_the_copy_computes_what_the_adapter_computes_and_follows_its_updates(tiny_model_dir, patched_by_trl):
    """Also under TRL's patch of the policy's forward: a copy that ran the policy would follow the adapter without
    a refresh."""
    model, tokenizer = _lora(tiny_model_dir)
    if patched_by_trl:
        _with_trls_fused_head(model)
    encoded = encode(tokenizer, PROMPTS)
    copy = MergedCopy(model)
    assert not any("lora" in name for name, _ in copy.model.named_parameters())
    torch.testing.assert_close(_logits(copy.model, encoded), _logits(model, encoded), rtol=1e-4, atol=1e-4)
    _change_adapter(model)
    updated = _logits(model, encoded)
    assert not torch.allclose(_logits(copy.model, encoded), updated, atol=1e-3)  # stale until refreshed
    addresses = [t.data_ptr() for t in copy.model.parameters()]
    copy.refresh()
    torch.testing.assert_close(_logits(copy.model, encoded), updated, rtol=1e-4, atol=1e-4)
    assert [t.data_ptr() for t in copy.model.parameters()] == addresses  # in place: a CUDA graph keeps its inputs


def test_the_loop_decodes_through_the_adapter_layers_unless_asked(tiny_model_dir):
    model, tokenizer = _lora(tiny_model_dir)
    encoded = encode(tokenizer, PROMPTS)
    rollouts = StaticLoopRollouts(model, model.generate, encoded["input_ids"].shape[1] + NEW)
    rollouts(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"],
             generation_config=_greedy_config(tokenizer))
    assert rollouts.merged is None and rollouts.decoder.model is model


def test_a_copy_that_would_not_run_its_own_layers_is_refused(tiny_model_dir, monkeypatch, caplog):
    """Were TRL's patch (or another like it) not undone, the copy would run the policy: the copy checks itself when
    it is built, and the rollouts then decode through the adapter layers, saying why."""
    from grpo.train import merged_copy

    monkeypatch.setattr(merged_copy, "_drop_instance_forwards", lambda model, names: None)
    model, tokenizer = _lora(tiny_model_dir)
    _with_trls_fused_head(model)
    with pytest.raises(ValueError, match="runs the policy's adapter layers"):
        MergedCopy(model)
    encoded = encode(tokenizer, PROMPTS)
    inputs = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    rollouts = StaticLoopRollouts(model, model.generate, inputs["input_ids"].shape[1] + NEW, merge_lora=True)
    with caplog.at_level(logging.WARNING, logger="grpo"):
        rollouts(**inputs, generation_config=_greedy_config(tokenizer))
    assert rollouts.merged is None and rollouts.decoder.model is model
    assert "not a merged copy: cannot decode through a merged copy: its forward runs the policy's" in caplog.text


def test_a_patched_forward_on_a_targeted_base_layer_is_dropped(tiny_model_dir):
    """A forward set on the instance of a targeted layer's base layer, closing over the policy's own weight, would
    make the merged layer compute with the unmerged weight (a trial forward cannot see that: the layer does run)."""
    from types import MethodType

    model, tokenizer = _lora(tiny_model_dir, target_modules=["q_proj", "v_proj"])
    base_layer = model.get_base_model().model.layers[0].self_attn.q_proj.base_layer
    unmerged = base_layer.weight
    base_layer.forward = MethodType(lambda self, x: torch.nn.functional.linear(x, unmerged), base_layer)
    copy = MergedCopy(model)
    encoded = encode(tokenizer, PROMPTS)
    assert "forward" not in vars(copy.model.model.layers[0].self_attn.q_proj)
    torch.testing.assert_close(_logits(copy.model, encoded), _logits(model, encoded), rtol=1e-4, atol=1e-4)


def test_a_patched_forward_outside_the_adapter_is_kept(tiny_model_dir):
    """Only the merged layers and the modules above them lose a forward set on the instance: one on a module
    without a merged layer (TRL's float32 LM head sets one on lm_head) computes with tensors the copy shares."""
    from types import MethodType

    model, tokenizer = _lora(tiny_model_dir, target_modules=["q_proj", "v_proj"])
    _with_trls_fused_head(model)
    up = model.get_base_model().model.layers[0].mlp.up_proj
    up.forward = MethodType(lambda self, x: torch.nn.functional.linear(x, self.weight) * 0.5, up)
    copy = MergedCopy(model)
    assert "forward" not in vars(copy.model)  # TRL's, above every targeted layer
    assert "forward" in vars(copy.model.model.layers[0].mlp.up_proj)
    encoded = encode(tokenizer, PROMPTS)
    torch.testing.assert_close(_logits(copy.model, encoded), _logits(model, encoded), rtol=1e-4, atol=1e-4)


def test_the_copy_shares_every_tensor_but_the_merged_weights(tiny_model_dir):
    model, _ = _lora(tiny_model_dir, target_modules=["q_proj", "v_proj"])
    copy = MergedCopy(model)
    base = model.get_base_model()
    assert copy.model.model.embed_tokens.weight is base.model.embed_tokens.weight
    assert copy.model.model.layers[0].mlp.up_proj.weight is base.model.layers[0].mlp.up_proj.weight
    merged = copy.model.model.layers[0].self_attn.q_proj
    assert type(merged) is torch.nn.Linear
    assert merged.weight is not base.model.layers[0].self_attn.q_proj.base_layer.weight
    targeted = [layer.self_attn.q_proj.weight for layer in copy.model.model.layers] + \
        [layer.self_attn.v_proj.weight for layer in copy.model.model.layers]
    assert copy.merged_bytes == sum(w.numel() * w.element_size() for w in targeted)
    assert not copy.model.training and not any(p.requires_grad for p in copy.model.parameters())
    assert model.training  # the policy is left as it was


@pytest.mark.parametrize("settings, reason", [
    ({"use_dora": True}, "uses a LoRA variant"),
    ({"lora_bias": True}, "has a LoRA bias"),
    ({"target_modules": ["q_proj", "lm_head"]}, "tied to another module"),  # the tiny model ties its embeddings
    ({"modules_to_save": ["lm_head"]}, "trainable tensors besides the LoRA matrices"),
    ({"target_modules": ["embed_tokens", "q_proj"]}, "not LoRA on nn.Linear"),
], ids=["dora", "lora_bias", "tied_lm_head", "modules_to_save", "embedding"])
def test_what_cannot_be_merged_is_named(tiny_model_dir, settings, reason):
    """Each of these would merge wrongly or leave a trained tensor stale in the copy; the policy is left as it was."""
    model, _ = _lora(tiny_model_dir, **({"target_modules": ["q_proj", "v_proj"]} | settings))
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert reason in unmergeable_reason(model)
    with pytest.raises(ValueError, match=reason):
        MergedCopy(model)
    assert [name for name, p in model.named_parameters() if p.requires_grad] == trainable


def test_a_model_without_adapter_is_not_merged(tiny_model_dir):
    model, _ = sharpened_model(tiny_model_dir)
    assert unmergeable_reason(model) == "the model has no PEFT adapter"


def _greedy_config(tokenizer) -> GenerationConfig:
    return GenerationConfig(max_new_tokens=NEW, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                            eos_token_id=[tokenizer.eos_token_id])


@pytest.mark.parametrize("targets", ["all-linear", ["q_proj", "v_proj"]], ids=["all", "q_v"])
def test_rollouts_decode_the_merged_copy_of_the_current_adapter(tiny_model_dir, caplog, targets):
    """Greedy rollouts through the merged copy, its projections fused, equal the policy's own generate, before and
    after the adapter changes in place, with one decoder for both (the copy is refreshed, not rebuilt). With q and v
    alone targeted, the copy's k, gate and up projections are the policy's own frozen tensors, which fusing makes
    views of the copy's stacked weights: the policy must compute as before."""
    model, tokenizer = _lora(tiny_model_dir, target_modules=targets)
    encoded = encode(tokenizer, PROMPTS)
    inputs = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    config = _greedy_config(tokenizer)
    policy_logits = _logits(model, encoded)
    rollouts = StaticLoopRollouts(model, model.generate, inputs["input_ids"].shape[1] + NEW, merge_lora=True)
    with caplog.at_level(logging.WARNING, logger="grpo"):
        first = rollouts(**inputs, generation_config=config)
        assert "q/k/v and gate/up projections fused" in caplog.text
        torch.testing.assert_close(_logits(model, encoded), policy_logits, rtol=0, atol=0)
        assert torch.equal(first, model.generate(**inputs, generation_config=config))
        decoder, copy = rollouts.decoder, rollouts.merged
        _change_adapter(model)
        expected = model.generate(**inputs, generation_config=config)
        assert not torch.equal(expected, first)
        assert torch.equal(rollouts(**inputs, generation_config=config), expected)
    assert rollouts.decoder is decoder and rollouts.merged is copy and decoder.model is copy.model
    assert caplog.text.count("decoding with a merged copy of the LoRA policy") == 1


def test_rollouts_fuse_the_copy_again_when_its_parameters_got_new_storage(tiny_model_dir):
    """Anything that gives the copy's parameters new storage (a move, a cast) leaves the fused product reading the
    old values; the rollout checks before decoding and fuses again, so it still follows the adapter."""
    model, tokenizer = _lora(tiny_model_dir)
    encoded = encode(tokenizer, PROMPTS)
    inputs = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    config = _greedy_config(tokenizer)
    rollouts = StaticLoopRollouts(model, model.generate, inputs["input_ids"].shape[1] + NEW, merge_lora=True)
    rollouts(**inputs, generation_config=config)
    for parameter in rollouts.merged.model.parameters():  # as model.to(...) does
        parameter.data = parameter.data.clone()
    _change_adapter(model)
    assert torch.equal(rollouts(**inputs, generation_config=config), model.generate(**inputs, generation_config=config))


def test_rollouts_of_an_unmergeable_adapter_decode_through_its_layers(tiny_model_dir, caplog):
    model, tokenizer = _lora(tiny_model_dir, target_modules=["q_proj", "v_proj"], use_dora=True)
    encoded = encode(tokenizer, PROMPTS)
    inputs = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    config = _greedy_config(tokenizer)
    rollouts = StaticLoopRollouts(model, model.generate, inputs["input_ids"].shape[1] + NEW, merge_lora=True)
    with caplog.at_level(logging.WARNING, logger="grpo"):
        for _ in range(2):
            assert torch.equal(rollouts(**inputs, generation_config=config),
                               model.generate(**inputs, generation_config=config))
    assert rollouts.merged is None and rollouts.decoder.model is model
    assert caplog.text.count("decoding through the LoRA layers, not a merged copy") == 1


def test_trainable_biases_of_targeted_layers_are_not_merged_nor_frozen():
    """Qwen2's q/k/v projections have biases; ``bias="lora_only"`` trains those of the targeted layers. A copy would
    share them as frozen tensors (and freezing them there would freeze the policy's): refused, policy untouched."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=128, tie_word_embeddings=False)
    model = get_peft_model(Qwen2ForCausalLM(config), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                               bias="lora_only"))
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert any(name.endswith("q_proj.base_layer.bias") for name in trainable)
    assert "trainable tensors besides the LoRA matrices" in unmergeable_reason(model)
    assert [name for name, p in model.named_parameters() if p.requires_grad] == trainable
