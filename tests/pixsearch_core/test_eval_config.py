"""One source per setting: --mode vs the decode section, retriever.k vs decode.top_k, --index vs the retriever
section, --model vs model.size, conf/model files as model=@..., train's device and dtype; conflicts name both."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.cli import build_parser
from jobs.eval.run import load
from pixsearch_core.config import ConfigError, load_config, validate_config
from pixsearch_core.decoding.options import MODE_NAMES, DecodeOptions, mode_fields, mode_name
from pixsearch_core.evaluation.config import EvalRunConfig
from pixsearch_core.evaluation.driver import RunRequest, resolve
from pixsearch_core.modeling.build import model_config
from pixsearch_core.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]


def _eval(*argv: str):
    args = build_parser().parse_args(
        [
            "eval",
            "run",
            "--config",
            str(ROOT / "conf/eval/demo.yaml"),
            "--benchmark",
            "synthcrag",
            "--data",
            "d",
            "--model",
            "tiny",
            *argv,
        ]
    )
    return load(args)


def _decode(name: str) -> str:
    return f"decode=@{ROOT / 'conf/decode' / name}.yaml"


def test_every_mode_name_round_trips():
    for name in MODE_NAMES:
        name = name.replace("<N>", "3")
        assert mode_name(DecodeOptions(**mode_fields(name))) == name
    assert mode_name(DecodeOptions(max_searches=1, modalities="no_region")) == "custom"


def test_a_decode_file_decides_the_mode_when_no_mode_is_given():
    cfg, req = _eval("--index", "none", _decode("no_search"))
    assert cfg.mode(req.mode) == "no_search" and cfg.decode_options(req.mode)["mode"] == "no_search"
    cfg, req = _eval("--index", "none", _decode("budget_1"))
    assert cfg.mode(req.mode) == "budget1" and cfg.decode_options()["max_searches"] == 1
    cfg, req = _eval("--index", "none", "--mode", "budget1", _decode("budget_1"))  # agreeing: fine
    assert cfg.decode_options(req.mode)["max_searches"] == 1


def test_a_mode_that_disagrees_with_the_decode_file_is_refused_naming_both():
    with pytest.raises(ConfigError) as ei:
        _eval("--index", "none", "--mode", "full", _decode("no_search"))
    msg = str(ei.value)
    assert "--mode full means decode.mode=full" in msg and "decode.mode=no_search" in msg
    with pytest.raises(ConfigError, match="decode.max_searches=1"):  # full means unbounded
        _eval("--index", "none", "--mode", "full", _decode("budget_1"))
    with pytest.raises(ConfigError, match="decode.modalities=image,text"):
        _eval("--index", "none", "--mode", "only_text", _decode("no_region"))
    with pytest.raises(ValueError, match="allowed: full, no_search"):
        _eval("--index", "none", "--mode", "budget")


def test_passages_per_search_have_one_source():
    cfg, _ = _eval("--index", "none")
    assert cfg.decode_options()["top_k"] == 1  # the demo config's retriever.k
    only_decode = load_config(EvalRunConfig, None, ["decode.top_k=4"])  # only decode says it: decode decides
    assert only_decode.decode_options()["top_k"] == 4
    assert load_config(EvalRunConfig, None, []).decode_options()["top_k"] == 3  # neither: retriever.k's default
    with pytest.raises(ConfigError, match=r"decode.top_k=4 and retriever.k=1"):
        _eval("--index", "none", "decode.top_k=4")
    with pytest.raises(ConfigError, match="search_k is now retriever.k"):
        validate_config(EvalRunConfig, {"search_k": 3})
    with pytest.raises(ConfigError, match="region is now retriever.crop"):
        validate_config(EvalRunConfig, {"region": {"padding": 0.2}})


def test_the_retriever_is_chosen_once():
    cfg, _ = _eval("--index", "out/idx", "retriever.crop.padding=0.3")
    assert (cfg.retriever.kind, cfg.retriever.uri, cfg.retriever.crop.padding) == ("index", "out/idx", 0.3)
    cfg, _ = _eval("--retriever", "cragmm", "retriever.cragmm.url=http://h:1/search")
    assert cfg.retriever.kind == "cragmm"
    # the demo config crops (snap + white paint); a service crops with its own flags: the error names both fixes
    with pytest.raises(ConfigError) as ei:
        _eval("--index", "http://127.0.0.1:1")
    assert "pixsearch search serve --region-background 255,255,255 --region-snap 0.3" in str(ei.value)
    assert "retriever.crop.background=null retriever.crop.snap=null" in str(ei.value)
    cfg, _ = _eval("--index", "http://127.0.0.1:1", "retriever.crop.background=null", "retriever.crop.snap=null")
    assert (cfg.retriever.kind, cfg.retriever.uri) == ("http", "http://127.0.0.1:1")
    cfg, _ = _eval("--index", "out/idx", "retriever.kind=index", "retriever.uri=out/idx")  # the same twice: fine
    with pytest.raises(ConfigError, match="needs backend.kind"):
        _eval("--retriever", "replay", "retriever.uri=out/replay")
    with pytest.raises(ConfigError) as ei:
        _eval("--index", "out/idx", "retriever.kind=cragmm")
    assert "--index out/idx disagrees with the config's retriever.kind='cragmm'" in str(ei.value)
    with pytest.raises(ConfigError, match="no retriever: pass --index"):
        _eval()
    with pytest.raises(SystemExit):  # one of them, not both
        _eval("--index", "none", "--retriever", "none")


def test_model_name_and_model_size_agree():
    with pytest.raises(ConfigError, match="--model tiny disagrees with the config's model.size='mini'"):
        _eval("--index", "none", f"model=@{ROOT / 'conf/model/mini.yaml'}")
    cfg = resolve(
        load_config(EvalRunConfig, None, [f"model=@{ROOT / 'conf/model/mini.yaml'}"]),
        RunRequest("synthcrag", "d", "mini", index="none"),
    )
    assert cfg.model.size == "mini"


def test_an_export_trained_with_the_question_restated_is_evaluated_with_it(tmp_path):
    """The export's lineage.json records data.restate_question; eval refuses a decode.restate_question that differs,
    naming the fix. Exports without that record, registry models and mask benchmarks are not checked."""
    import json

    export = tmp_path / "stage2" / "final"
    export.mkdir(parents=True)
    record = {"kind": "training", "config": {"data": {"restate_question": True}}}
    (export / "lineage.json").write_text(json.dumps(record))
    plain = load_config(EvalRunConfig, None, [])
    with pytest.raises(ConfigError, match=r"data.restate_question=True .* set decode.restate_question=true"):
        resolve(plain, RunRequest("synthcrag", "d", str(export), index="none"))
    agreed = load_config(EvalRunConfig, None, ["decode.restate_question=true"])
    assert resolve(agreed, RunRequest("synthcrag", "d", str(export), index="none")).decode.restate_question
    record["config"]["data"]["restate_question"] = False
    (export / "lineage.json").write_text(json.dumps(record))
    with pytest.raises(ConfigError, match=r"data.restate_question=False .* set decode.restate_question=false"):
        resolve(agreed, RunRequest("synthcrag", "d", str(export), index="none"))
    for odd in ({"config": {"data": "x"}}, {"config": None}, [1, 2], {"config": {"data": {"restate_question": "yes"}}}):
        (export / "lineage.json").write_text(json.dumps(odd))  # another shape: nothing to check, no crash
        resolve(agreed, RunRequest("synthcrag", "d", str(export), index="none"))
    (export / "lineage.json").write_text('{"config": {"da')  # truncated: left to the model loader
    resolve(agreed, RunRequest("synthcrag", "d", str(export), index="none"))
    (export / "lineage.json").unlink()
    resolve(agreed, RunRequest("synthcrag", "d", str(export), index="none"))  # no record: nothing to check
    resolve(agreed, RunRequest("synthcrag", "d", "tiny", index="none"))


def test_a_conf_model_file_is_what_the_builder_gets(tmp_path):
    edited = tmp_path / "13b.yaml"
    edited.write_text((ROOT / "conf/model/13b.yaml").read_text().replace("s3://CHANGE-ME/llava", "s3://mine/llava"))
    cfg = load_config(EvalRunConfig, None, [f"model=@{edited}"])
    built = model_config(cfg.model.size, cfg.model.build_overrides())
    assert built.language_model.path == "s3://mine/llava-v1.5-13b-hf" and built.size == "13b"
    assert built.sam.checkpoint == "s3://CHANGE-ME/sam_vit_h_4b8939.pth" and built.mask_feedback is True
    with pytest.raises(ConfigError, match=r"language_model.path \(model.overrides\) and language_model.path"):
        load_config(EvalRunConfig, None, [f"model=@{edited}", "model.overrides=[language_model.path=x]"])
    with pytest.raises(ConfigError, match="language_model.flavour"):  # a typo in a model file is found at load
        validate_config(EvalRunConfig, {"model": {"size": "13b", "language_model": {"flavour": 1}}})


def test_train_reads_conf_model_files_and_refuses_a_second_device_or_dtype():
    base = str(ROOT / "conf/train/13b-paper.yaml")
    cfg = load_config(TrainConfig, base, [f"model=@{ROOT / 'conf/model/13b.yaml'}"])
    assert cfg.model.size == "13b" and cfg.model.dtype() == "bfloat16"  # precision bf16 agrees
    with pytest.raises(ConfigError, match="precision=fp32 and the model section's dtype=bfloat16"):
        load_config(TrainConfig, base, [f"model=@{ROOT / 'conf/model/13b.yaml'}", "precision=fp32"])
    with pytest.raises(ConfigError, match="train places the model on each rank's device"):
        load_config(TrainConfig, base, ["model.overrides=[device=cuda]"])


@pytest.mark.parametrize("size", ["tiny", "mini", "13b"])
def test_conf_model_files_restate_the_builders_defaults(size):
    """conf/model/<size>.yaml is what `get("model", size)()` builds (README: the defaults are these files)."""
    spec = load_config(EvalRunConfig, None, [f"model=@{ROOT / 'conf/model' / size}.yaml"]).model
    assert spec.size == size and model_config(size, spec.build_overrides()) == model_config(size)
