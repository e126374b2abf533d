"""Weights in and out: local paths or object-store URIs; safetensors or `torch.load(weights_only=True)` only.

PixSearch checkpoints (what training writes) hold the TRAINABLE parts only:

    <dir>/trainable.safetensors   LoRA, span tagger, mask head, prompt encoder, mask decoder, [projector], and the
                                  special-token rows (`token_rows.input` / `token_rows.output`, `token_rows.ids`)
    <dir>/config.json             the ModelConfig it was trained with

    save_trainable(model, "s3://bucket/ckpt/stage1/step-1000")
    load_trainable(model, "s3://bucket/ckpt/stage1/step-1000")   # mismatch -> CheckpointMismatchError naming
                                                                 # the missing and unexpected keys
    build_from_checkpoint(uri, "tiny")   # (modeling/build.py) the model as trained, from config.json + weights

Other formats:
- SAM (`sam_vit_h_4b8939.pth`): keys `image_encoder.*`, `prompt_encoder.*`, `mask_decoder.*` map 1:1 to
  PixSearchModel's `sam_image_encoder.*`, `prompt_encoder.*`, `mask_decoder.*` (`load_sam_weights`).
- LLaVA in Hugging Face format (`LlavaForConditionalGeneration` directory): loaded by transformers in build.py.
- PLUM (the paper's initialisation, §4.3) and LISA full checkpoints: a merged Hugging Face directory (what PLUM's
  `merge_lora_weights_and_save_hf_model.py` writes: `PLUMForCausalLM.save_pretrained`, LoRA merged, every
  `vision_tower` key dropped) or one weights file. `PLUM_KEY_RULES` below, applied in order, first match wins
  (the names are those of PLUM's public code, github.com/AnselBlume/partonomy src/models/PLUM/model/PLUM.py):

    PLUM key                                          PixSearchModel key
    model.{embed_tokens,layers,norm}.*            ->  language_model.model.*  (Llama-2-13B, before LoRA)
    lm_head.weight                                ->  language_model.lm_head.weight
    model.mm_projector.{weight,bias}              ->  projector.linear_1.*   (LLaVA-1 linear: `projector: linear`)
    model.mm_projector.{0,2}.*                    ->  projector.linear_{1,2}.*   (LLaVA-1.5 mlp2x_gelu)
    model.visual_model.image_encoder.*            ->  sam_image_encoder.*    (SAM ViT-H)
    model.visual_model.prompt_encoder.*           ->  prompt_encoder.*
    model.visual_model.mask_decoder.*             ->  mask_decoder.*
    model.text_hidden_fcs.0.{0,2}.*               ->  mask_head.mlp.{0,2}.*  (g: Linear-ReLU-Linear-Dropout, D -> 256)
    model.token_to_mask_fcs.0.{0,2}.*             ->  span_tagger.classifier.{0,2}.*  (B/I/O head; `span_tagger_style:
                                                      plum`)
    bio_encoder.encoder.layers.0.*                ->  span_tagger.encoder.*  (the bidirectional layer, ff 2048, 8 heads)
    model.vision_tower.vision_tower.vision_model.* -> vision_tower.clip.*    (only if present; PLUM's merge drops it)

  Skipped on purpose, counted in the log (`PLUM_SKIPPED`): `mask_pooler.*` (PLUM's FiLM mask pooler; PixSearch's
  feedback loop feeds the previous low-res mask through SAM's own prompt encoder), `teacher_llm.*` (PLUM's frozen
  KL teacher) and the `seg_h_ref` training buffer. Anything else no rule maps (e.g. PLUM's optional
  `bio_cross_attn.*`) is an error. All problems come in ONE `CheckpointMismatchError`: keys no rule maps, mapped
  names the model does not have, tensors of the wrong shape, and the model's keys left without a value in every part
  the checkpoint touches (keys differing only in layer numbers are listed once, as `layers.*` with a count).
Extra rules can be passed (config `init_key_rules`). The embedding and output matrices may differ in rows (PLUM adds
<im_start>/<im_end>, LLaVA-HF pads its vocabulary): the rows both have are copied and the difference is logged; the
base vocabulary ids agree, and the PixSearch tokens' rows keep their mean initialisation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

import torch
from torch import nn

from pixsearch_core.storage import ObjectStore, child_path, is_s3, join

log = logging.getLogger(__name__)

TRAINABLE_FILE = "trainable.safetensors"
CONFIG_FILE = "config.json"
RUN_SETTINGS = {"sam_embedding_cache"}  # ModelConfig keys about where a run keeps things, not what the model is
ROWS_IN, ROWS_OUT, ROWS_IDS = "token_rows.input", "token_rows.output", "token_rows.ids"

PLUM_KEY_RULES: list[tuple[str, str]] = [
    (r"^model\.visual_model\.image_encoder\.(.*)$", r"sam_image_encoder.\1"),
    (r"^model\.visual_model\.prompt_encoder\.(.*)$", r"prompt_encoder.\1"),
    (r"^model\.visual_model\.mask_decoder\.(.*)$", r"mask_decoder.\1"),
    (r"^model\.text_hidden_fcs\.0\.([02])\.(.*)$", r"mask_head.mlp.\1.\2"),
    (r"^model\.token_to_mask_fcs\.0\.([02])\.(.*)$", r"span_tagger.classifier.\1.\2"),
    (r"^bio_encoder\.encoder\.layers\.0\.(.*)$", r"span_tagger.encoder.\1"),
    (r"^model\.mm_projector\.(weight|bias)$", r"projector.linear_1.\1"),
    (r"^model\.mm_projector\.0\.(.*)$", r"projector.linear_1.\1"),
    (r"^model\.mm_projector\.2\.(.*)$", r"projector.linear_2.\1"),
    (r"^model\.vision_tower\.vision_tower\.(?:vision_model\.)?(.*)$", r"vision_tower.clip.\1"),
    (r"^model\.(embed_tokens|layers|norm)\.(.*)$", r"language_model.model.\1.\2"),
    (r"^lm_head\.(.*)$", r"language_model.lm_head.\1"),
]
LISA_KEY_RULES = PLUM_KEY_RULES  # LISA's checkpoints use the same names (and have no span tagger)

#: (pattern, why) of checkpoint keys with no PixSearch counterpart, skipped on purpose
PLUM_SKIPPED: list[tuple[str, str]] = [
    (r"^mask_pooler\.", "PLUM's FiLM mask pooler (PixSearch feeds the previous mask through SAM's prompt encoder)"),
    (r"^teacher_llm\.", "PLUM's frozen KL teacher"),
    (r"^seg_h_ref$", "a training-time buffer"),
]


def compact(keys: list[str]) -> list[str]:
    """Keys with their numeric path parts collapsed: 'layers.*.mlp.w (x40)' once instead of 40 keys."""
    groups: dict[str, int] = {}
    for k in keys:
        pattern = re.sub(r"(?<=\.)\d+(?=\.|$)", "*", k)
        groups[pattern] = groups.get(pattern, 0) + 1
    return [p if n == 1 else f"{p} (x{n})" for p, n in sorted(groups.items())]


class CheckpointMismatchError(ValueError):
    """A checkpoint whose keys or shapes do not match the model; the message lists every problem (compacted)."""

    def __init__(
        self, source: str, missing: list[str], unexpected: list[str], shapes: list[str] = (), unmapped: list[str] = ()
    ):
        self.missing, self.unexpected, self.shapes = missing, unexpected, list(shapes)
        self.unmapped = list(unmapped)
        parts = [f"checkpoint {source} does not match the model config"]
        for label, keys in (
            ("unmapped keys (no mapping rule)", self.unmapped),
            ("missing keys", missing),
            ("unexpected keys", unexpected),
        ):
            if keys:
                parts.append(f"{label} ({len(keys)}): {compact(keys)}")
        if self.shapes:
            parts.append(f"shape mismatches ({len(self.shapes)}): {self.shapes}")
        super().__init__("; ".join(parts))


# ---------------------------------------------------------------- reading files
def materialize(uri: str, cache_dir: str | Path, store: ObjectStore | None = None) -> Path:
    """A local path for `uri`: plain paths and file:// as they are; an s3:// object or prefix is downloaded once
    into `cache_dir` (keyed by the URI) and reused. A key that would land outside it (`..`) raises
    UnsafePathError before anything is written."""
    store = store or ObjectStore()
    if not is_s3(uri):
        from pixsearch_core.storage import local_path

        path = local_path(uri).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"weights not found at {uri}")
        return path
    target = Path(cache_dir).expanduser() / hashlib.sha256(uri.encode()).hexdigest()[:16]
    if store.exists(uri):  # one object
        dest = child_path(target, uri.rstrip("/").rsplit("/", 1)[-1])
        if not dest.exists():
            store.get_file(uri, dest)
        return dest
    objects = list(store.list(uri))
    if not objects:
        raise FileNotFoundError(f"no object or prefix at {uri}")
    base = uri.rstrip("/") + "/"
    dests = [(obj, child_path(target, obj[len(base) :])) for obj in objects]  # every key checked before any write
    for obj, dest in dests:
        if not dest.exists() or dest.stat().st_size != store.size(obj):
            store.get_file(obj, dest)
    return target


def read_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """One weights file (.safetensors, or .pt/.pth/.bin through torch.load(weights_only=True)) or a directory of
    them (all *.safetensors, else all *.bin / *.pt / *.pth) -> one state dict."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.safetensors")) or sorted(
            p for ext in ("*.bin", "*.pt", "*.pth") for p in path.glob(ext)
        )
        if not files:
            raise FileNotFoundError(f"no .safetensors/.bin/.pt/.pth weights in {path}")
        out: dict[str, torch.Tensor] = {}
        for f in files:
            out.update(read_state_file(f))
        return out
    if path.suffix == ".safetensors":
        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict", "module"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    return state


# ---------------------------------------------------------------- trainable parts
def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable parameters by name; the (huge) embedding matrices contribute only the special-token rows."""
    from pixsearch_core.modeling.trainable import special_row_ids, token_row_params

    rows = token_row_params(model) if getattr(model, "new_token_rows", False) else []
    out = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad and not any(p is r for r in rows)}
    if rows:
        ids = torch.tensor(special_row_ids(model))
        out[ROWS_IDS] = ids
        out[ROWS_IN] = rows[0].detach()[ids]
        out[ROWS_OUT] = (rows[1] if len(rows) > 1 else rows[0]).detach()[ids]
    return out


def save_trainable(model: nn.Module, uri: str, store: ObjectStore | None = None) -> dict[str, str]:
    """Write trainable.safetensors and config.json under `uri` (a directory path or object-store prefix).
    Returns {file: sha256}."""
    from safetensors.torch import save

    store = store or ObjectStore()
    tensors = {k: v.contiguous().cpu() for k, v in trainable_state_dict(model).items()}
    cfg = model.config.model_dump(mode="json", exclude=RUN_SETTINGS) if model.config is not None else {}
    blob = save(tensors, metadata={"format": "pixsearch-trainable", "size": str(cfg.get("size", ""))})
    shas = {TRAINABLE_FILE: store.put_bytes(join(uri, TRAINABLE_FILE), blob)}
    shas[CONFIG_FILE] = store.put_bytes(join(uri, CONFIG_FILE), json.dumps(cfg, indent=2).encode())
    log.info("saved %d trainable tensors to %s", len(tensors), uri)
    return shas


def load_trainable(model: nn.Module, uri: str, store: ObjectStore | None = None) -> None:
    """Load what `save_trainable` wrote. Keys and shapes must match the model exactly (CheckpointMismatchError)."""
    from safetensors.torch import load

    store = store or ObjectStore()
    state = load(store.get_bytes(join(uri, TRAINABLE_FILE)))
    expected = trainable_state_dict(model)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if state[k].shape != expected[k].shape
    ]
    if (
        ROWS_IDS in state
        and ROWS_IDS in expected
        and not shapes
        and not torch.equal(state[ROWS_IDS], expected[ROWS_IDS])
    ):
        shapes.append(f"{ROWS_IDS}: checkpoint {state[ROWS_IDS].tolist()} vs model {expected[ROWS_IDS].tolist()}")
    if missing or unexpected or shapes:
        raise CheckpointMismatchError(uri, missing, unexpected, shapes)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, v in state.items():
            if k in params:
                params[k].copy_(v)
        if ROWS_IDS in state:
            from pixsearch_core.modeling.trainable import token_row_params

            rows = token_row_params(model)  # the model may already sit on a GPU; the file is read on the CPU
            ids = state[ROWS_IDS].long().to(rows[0].device)
            rows[0][ids] = state[ROWS_IN].to(rows[0].device, rows[0].dtype)
            if len(rows) > 1:
                rows[1][ids] = state[ROWS_OUT].to(rows[1].device, rows[1].dtype)
    log.info("loaded %d trainable tensors from %s", len(state), uri)


def checkpoint_config(uri: str, store: ObjectStore | None = None) -> dict | None:
    """The ModelConfig (as a dict) that `save_trainable` stored with a checkpoint; None when it has none."""
    store = store or ObjectStore()
    path = join(uri, CONFIG_FILE)
    return json.loads(store.get_bytes(path)) if store.exists(path) else None


# ---------------------------------------------------------------- SAM and LISA / PLUM
def load_sam_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """A SAM checkpoint's state dict (image_encoder/prompt_encoder/mask_decoder) into the model's SAM parts."""
    mapped = {}
    for k, v in state.items():
        head, _, rest = k.partition(".")
        mapped[{"image_encoder": "sam_image_encoder"}.get(head, head) + "." + rest] = v
    _load_into(model, mapped, ("sam_image_encoder", "prompt_encoder", "mask_decoder"), source)


def map_keys(state: dict[str, torch.Tensor], rules: list[tuple[str, str]]) -> tuple[dict, list[str]]:
    """Rename keys by the first matching (regex, replacement) rule -> (mapped state, keys no rule matched)."""
    compiled = [(re.compile(p), r) for p, r in rules]
    mapped, unmapped = {}, []
    for k, v in state.items():
        for pattern, repl in compiled:
            if pattern.match(k):
                mapped[pattern.sub(repl, k)] = v
                break
        else:
            unmapped.append(k)
    return mapped, unmapped


def _skip(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    kept, counts = {}, {}
    for k, v in state.items():
        why = next((w for p, w in PLUM_SKIPPED if re.match(p, k)), None)
        if why is None:
            kept[k] = v
        else:
            counts[why] = counts.get(why, 0) + 1
    for why, n in counts.items():
        log.info("%s: skipped %d keys: %s", source, n, why)
    return kept


def _merge_rows(mapped: dict[str, torch.Tensor], own: dict[str, torch.Tensor], source: str) -> None:
    """Embedding / output matrices with a different vocabulary size: copy the rows both have (in place)."""
    for key in [k for k in mapped if k.endswith(("embed_tokens.weight", "lm_head.weight")) and k in own]:
        theirs, ours = mapped[key], own[key]
        if theirs.shape[0] != ours.shape[0] and theirs.shape[1:] == ours.shape[1:]:
            n = min(theirs.shape[0], ours.shape[0])
            log.warning(
                "%s: %s has %d rows, the model %d; copying the first %d", source, key, theirs.shape[0], ours.shape[0], n
            )
            merged = ours.clone()
            merged[:n] = theirs[:n]
            mapped[key] = merged


def load_plum_style(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    source: str,
    rules: list[tuple[str, str]] | None = None,
    strict: bool = True,
) -> None:
    """A PLUM / LISA full checkpoint into the model (before LoRA is applied). See the module docstring. Every
    problem is reported in one CheckpointMismatchError; with strict=False only shape mismatches are errors."""
    mapped, unmapped = map_keys(_skip(state, source), (rules or []) + PLUM_KEY_RULES)
    own = model.state_dict()
    _merge_rows(mapped, own, source)
    prefixes = {k.split(".", 1)[0] for k in mapped}
    expected = {k for k in own if k.split(".", 1)[0] in prefixes}
    missing, unexpected = sorted(expected - set(mapped)), sorted(set(mapped) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(mapped[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(expected & set(mapped))
        if own[k].shape != mapped[k].shape
    ]
    if shapes or (strict and (unmapped or missing or unexpected)):
        raise CheckpointMismatchError(source, missing, unexpected, shapes, sorted(unmapped))
    model.load_state_dict({k: v for k, v in mapped.items() if k in own}, strict=False)
    if hasattr(model, "clear_image_cache"):
        model.clear_image_cache()
    log.info("%s: loaded %d tensors into %s", source, len(mapped), ", ".join(sorted(prefixes)))


load_lisa_style = load_plum_style  # the older name


def _load_into(model: nn.Module, state: dict[str, torch.Tensor], prefixes, source: str, strict: bool = True) -> None:
    own = {k: v for k, v in model.state_dict().items() if k.split(".", 1)[0] in prefixes}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if own[k].shape != state[k].shape
    ]
    if shapes or (strict and (missing or unexpected)):
        raise CheckpointMismatchError(source, missing, unexpected, shapes)
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    if hasattr(model, "clear_image_cache"):
        model.clear_image_cache()
