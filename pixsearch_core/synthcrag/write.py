"""Write a SynthCRAG world: corpus (for the indexing job), stage-1 and stage-2 data, and the benchmark splits.

Layout under `out` (a path or object-store URI); every image / mask reference in these files is relative to `out`
(`synthcrag.paths`), so the bytes do not depend on where the world is written:
    world.json                       the world config, counts and format version (written last: marks the root)
    corpus/docs.jsonl                id, title, text, url, image (corpus/images/<id>.png, or null)
    corpus/images/<entity-id>.png    each entity alone (what the image index holds)
    scenes/<split>/<id>.png          scene images; masks/<split>/<id>.png their gold target masks
    stage1/train.jsonl               referring segmentation: image, expression, mask of each training scene's
                                     target, plus `refer_scenes_per_entity` extra egocentric scenes per training
                                     entity (scenes/train/<entity>-r<j>.png)
    stage2/train.jsonl               search-interleaved trajectories (question, image, response, query types) about
                                     counterfactual entities (same picture, fresh name and facts: questions.
                                     counterfactual), so that answers come from the evidence, not memory; ids
                                     ending -ef: the same question in the evidence-first (baseline) format (every
                                     no-search question, `evidence_first_share` of the others); ids ending
                                     -v<j>: `visual_questions_per_scene` colour or count questions (no search)
                                     about each training scene, stage 1's extra scenes included, half of them
                                     in the evidence-first format (ids -v<j>-ef): visual instruction data, as
                                     the paper's LLaVA data, so the LM learns to read its picture
    benchmark/{train,test}.jsonl     questions with gold answers (CRAG-MM-like fields), egocentric flag, masks
`unanswerable_share` of the questions in each split ask for a fact the entity's document leaves out; their target is
"I don't know" (`synthcrag.unanswerable`). Everything is a pure function of the world config and the counts: the
same seed writes the same bytes, wherever it writes them.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from pixsearch_core.masks import mask_to_png
from pixsearch_core.storage import ObjectStore, join
from pixsearch_core.synthcrag.questions import QUESTION_TYPES, counterfactual, make_question, to_record
from pixsearch_core.synthcrag.render import compose_scene, icon_image
from pixsearch_core.synthcrag.unanswerable import UNANSWERABLE, plan_unanswerable
from pixsearch_core.synthcrag.world import World

log = logging.getLogger(__name__)

#: bumped whenever the writer's output changes for the same config (`pixsearch demo` then rewrites a world);
#: 3: references relative to the world root, unanswerable questions
FORMAT = 3
#: options added after format 3, with the value that writes the world as before: world.json records each only when
#: it differs from this, so the worlds made without them keep their bytes (and digests); readers fill them back in
OPTIONAL_META: dict[str, Any] = {"visual_questions_per_scene": 0, "fact_tails": False}


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode()


def corpus_records(world: World) -> list[dict[str, Any]]:
    docs = [
        {
            "id": e.id,
            "title": e.name,
            "text": e.document(),
            "url": f"synthcrag://entity/{e.id}",
            "image": f"corpus/images/{e.id}.png",
        }
        for e in world.entities
    ]
    docs += [
        {"id": m.id, "title": m.name, "text": m.document(), "url": f"synthcrag://maker/{m.id}", "image": None}
        for m in world.makers
    ]
    docs += [
        {"id": p.id, "title": p.name, "text": p.document(), "url": f"synthcrag://place/{p.id}", "image": None}
        for p in world.places
    ]
    return docs


def _refer_record(sid: str, scene, e) -> dict[str, Any]:
    """The stage-1 record of a training scene: the target's description and gold mask. (Records for the
    distractors too were tried: egocentric target gIoU after 1000 stage-1 steps fell from 0.29 to 0.17.)"""
    return {
        "id": sid,
        "image": f"scenes/train/{sid}.png",
        "expression": e.description,
        "mask": f"masks/train/{sid}.png",
        "box": list(scene.target_box),
    }


def _visual_questions(world: World, scenes: list, per_scene: int) -> list[dict[str, Any]]:
    """Stage-2 rows asking the colour of each training scene's target or the scene's object count (no search:
    the answer is in the picture), half of them after another entity's evidence (the fixed-query baselines'
    format, which the model must learn to look past). Their own random stream: the rest of the world is unchanged."""
    rng = np.random.default_rng(world.config.seed + 5)
    rows = []
    for sid, e, ego, n_objects, img_ref, mask_ref, box in scenes:
        for j in range(per_scene):
            r = to_record(
                f"{sid}-v{j}", make_question(world, e, "no_search", ego, n_objects, rng), e, ego, img_ref, mask_ref, box
            )
            rows.append(_evidence_first_row(r) if rng.random() < 0.5 else _stage2_row(r))
    return rows


def _stage2_row(r: dict[str, Any]) -> dict[str, Any]:
    """The stage-2 (trajectory reader) row of a benchmark-style record (`questions.to_record`)."""
    return {
        "id": r["interaction_id"],
        "image": r["image"],
        "question": r["query"],
        "response": r["response"],
        "query_types": r["query_types"],
        "entity_span": r["entity_span"],
        "mask": r["gold_mask"],
        "question_type": r["question_type"],
    }


def _evidence_first_row(r: dict[str, Any]) -> dict[str, Any]:
    """The same question in the fixed-query baselines' format: the evidence first, no first search (id -ef)."""
    row = _stage2_row(r)
    return {
        **row,
        "id": row["id"] + "-ef",
        "response": r["response_evidence_first"],
        "query_types": r["query_types"][1:],
    }


def _pool(world: World, e) -> list:
    """Distractor candidates for `e`: same split, not of e's colour and shape."""
    return [d for d in world.entities if d.split == e.split and (d.colour, d.shape) != (e.colour, e.shape)]


def _distractors(rng: np.random.Generator, pool: list) -> list:
    n = min(int(rng.integers(2, 5)), len(pool))  # a tiny world may have fewer candidates
    return [pool[i] for i in rng.choice(len(pool), size=n, replace=False)]


def write_synthcrag(
    world: World,
    out: str,
    store: ObjectStore | None = None,
    scenes_per_entity: int = 2,
    questions_per_scene: int = 2,
    evidence_first_share: float = 0.25,
    refer_scenes_per_entity: int = 0,
    unanswerable_share: float = 0.15,
    visual_questions_per_scene: int = 0,
    fact_tails: bool = False,
) -> dict[str, int]:
    """Generate scenes and questions for every entity and write the layout above; returns the counts.
    Every no-search training question and `evidence_first_share` of the others get a second stage-2 trajectory in
    the baselines' format; `refer_scenes_per_entity` extra egocentric scenes per training entity feed stage 1;
    `unanswerable_share` of each split's questions are unanswerable from the corpus; `visual_questions_per_scene`
    colour or count questions about each training scene join stage 2 (0: none, the world as before); `fact_tails`:
    factoid responses restate the fact asked (`synthcrag.questions`; False: the world as before)."""
    store = store or ObjectStore()
    plan = plan_unanswerable(world, scenes_per_entity, questions_per_scene, unanswerable_share)
    world = world.withholding(plan.withheld)
    rng = np.random.default_rng(world.config.seed + 1)
    store.put_bytes(join(out, "corpus", "docs.jsonl"), _jsonl(corpus_records(world)))
    for e in tqdm(world.entities, desc="synthcrag icons", unit="icon"):
        store.put_bytes(join(out, "corpus", "images", f"{e.id}.png"), _png(icon_image(e)))
    rows: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    trajectories: list[dict[str, Any]] = []  # stage 2: the training questions about counterfactual entities
    cf_rng = np.random.default_rng(world.config.seed + 3)
    stage1: list[dict[str, Any]] = []
    seen: list[tuple[str, Any, bool, int, str, str, tuple]] = []  # training scenes, for the visual questions
    for e in tqdm(world.entities, desc="synthcrag scenes", unit="entity"):
        pool = _pool(world, e)
        for s in range(scenes_per_entity):
            ego = s % 2 == 0
            distract = []
            if ego:
                distract = _distractors(rng, pool)
            scene = compose_scene(rng, e, distract, egocentric=ego)
            sid = f"{e.id}-s{s}"
            img_ref, mask_ref = f"scenes/{e.split}/{sid}.png", f"masks/{e.split}/{sid}.png"
            img_uri, mask_uri = join(out, img_ref), join(out, mask_ref)
            store.put_bytes(img_uri, _png(scene.image))
            store.put_bytes(mask_uri, mask_to_png(scene.target_mask))
            if e.split == "train":
                stage1.append(_refer_record(sid, scene, e))
                seen.append((sid, e, ego, len(scene.objects), img_ref, mask_ref, scene.target_box))
            for qi in range(questions_per_scene):
                qtype = QUESTION_TYPES[int(rng.integers(len(QUESTION_TYPES)))]
                qtype = UNANSWERABLE if (e.id, s, qi) in plan.slots else qtype
                draws = rng.bit_generator.state  # a fresh dict: the counterfactual replays the same draws
                q = make_question(world, e, qtype, ego, len(scene.objects), rng, fact_tails=fact_tails)
                rows[e.split].append(to_record(f"{sid}-q{qi}", q, e, ego, img_ref, mask_ref, scene.target_box))
                if e.split == "train":
                    e_cf, maker_cf = counterfactual(world, e, cf_rng)
                    same = np.random.default_rng()
                    same.bit_generator.state = draws
                    q_cf = make_question(
                        world, e_cf, qtype, ego, len(scene.objects), same, maker=maker_cf, fact_tails=fact_tails
                    )
                    trajectories.append(to_record(f"{sid}-q{qi}", q_cf, e, ego, img_ref, mask_ref, scene.target_box))
    refer_rng = np.random.default_rng(world.config.seed + 4)  # its own stream: the benchmark stays as it was
    for e in world.split("train") if refer_scenes_per_entity else []:
        pool = _pool(world, e)
        for j in range(refer_scenes_per_entity):
            scene = compose_scene(refer_rng, e, _distractors(refer_rng, pool), egocentric=True)
            sid = f"{e.id}-r{j}"
            img_ref, mask_ref = f"scenes/train/{sid}.png", f"masks/train/{sid}.png"
            store.put_bytes(join(out, img_ref), _png(scene.image))
            store.put_bytes(join(out, mask_ref), mask_to_png(scene.target_mask))
            stage1.append(_refer_record(sid, scene, e))
            seen.append((sid, e, True, len(scene.objects), img_ref, mask_ref, scene.target_box))
    for split, recs in rows.items():
        store.put_bytes(join(out, "benchmark", f"{split}.jsonl"), _jsonl(recs))
    stage2 = [_stage2_row(r) for r in trajectories]
    # a share of the trajectories again in the fixed-query baselines' format (evidence prepended), so that the
    # whole-image and text-question baselines evaluate a model that knows how to read prepended evidence
    pick = np.random.default_rng(world.config.seed + 2).random(len(trajectories)) < evidence_first_share
    pick |= np.array([r["question_type"] == "no_search" for r in trajectories], dtype=bool)  # answer, ignore it
    stage2 += [_evidence_first_row(r) for r, p in zip(trajectories, pick) if p]
    stage2 += _visual_questions(world, seen, visual_questions_per_scene)
    store.put_bytes(join(out, "stage1", "train.jsonl"), _jsonl(stage1))
    store.put_bytes(join(out, "stage2", "train.jsonl"), _jsonl(stage2))
    counts = {
        "entities": len(world.entities),
        "documents": len(world.entities) + len(world.makers) + len(world.places),
        "train_questions": len(rows["train"]),
        "test_questions": len(rows["test"]),
        "test_egocentric": sum(r["egocentric"] for r in rows["test"]),
        "stage1": len(stage1),
        "stage2": len(stage2),
        "unanswerable": sum(not r["answerable"] for rs in rows.values() for r in rs),
    }
    options = {"visual_questions_per_scene": visual_questions_per_scene, "fact_tails": fact_tails}
    meta = {
        "config": world.config.model_dump(),
        "scenes_per_entity": scenes_per_entity,
        "questions_per_scene": questions_per_scene,
        "refer_scenes_per_entity": refer_scenes_per_entity,
        "evidence_first_share": evidence_first_share,
        "unanswerable_share": unanswerable_share,
        "format": FORMAT,
        **{k: v for k, v in options.items() if v != OPTIONAL_META[k]},
        "counts": counts,
    }
    store.put_bytes(join(out, "world.json"), json.dumps(meta, indent=2, sort_keys=True).encode())
    log.info("synthcrag world written to %s: %s", out, counts)
    return counts
