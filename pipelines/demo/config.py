"""`pixsearch demo` config (conf/demo/*.yaml): the world, and which job configs and overrides each step uses."""

from __future__ import annotations

from pydantic import Field

from pixsearch_core.config import Config
from pixsearch_core.synthcrag.world import WorldConfig


class StepConfig(Config):
    """One job of the pipeline: its conf/ file and dotted overrides (the demo adds its own paths)."""

    config: str
    overrides: list[str] = []


class DemoConfig(Config):
    output: str = Field("out/demo", description="local directory for every artefact of the demo")
    world: WorldConfig = WorldConfig()
    scenes_per_entity: int = Field(2, ge=1)
    questions_per_scene: int = Field(2, ge=1)
    refer_scenes_per_entity: int = Field(0, ge=0, description="extra egocentric stage-1 scenes per training entity")
    unanswerable_share: float = Field(
        0.15,
        ge=0.0,
        le=0.5,
        description="share of each split's questions whose evidence lacks the answer (target: \"I don't know\")",
    )
    evidence_first_share: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description="share of the searching stage-2 questions trained a second time in the fixed-query baselines' "
        "evidence-first format (every no-search question is); the whole-image and text-question modes decode in it",
    )
    visual_questions_per_scene: int = Field(
        0,
        ge=0,
        le=8,
        description="stage-2 colour or count questions (no search) about each training scene, half of them after "
        "another entity's evidence: visual instruction data, so that the LM learns to read its picture (0: none)",
    )
    fact_tails: bool = Field(
        False,
        description='factoid trajectories restate the fact asked before answering ("... is the Ulsho, first '
        'produced in Marrobel. Answer: Marrobel"), unanswerable ones say which fact the evidence lacks (not in '
        'the paper; False: the tail is "... is the Ulsho. Answer: Marrobel")',
    )
    index: StepConfig = StepConfig(config="conf/index/synthcrag.yaml")
    train: StepConfig = StepConfig(config="conf/train/synthcrag-demo.yaml")
    train_nproc: int = Field(1, ge=1, description="training processes on this machine (torchrun)")
    sam_embedding_cache: bool = Field(
        False,
        description="keep a frozen SAM encoder's image embeddings in <output>/sam-cache, shared by both training "
        "stages, both ranks and every eval mode (the pretrained `mini`'s encoder is most of a CPU training step)",
    )
    eval: StepConfig = StepConfig(config="conf/eval/demo.yaml")
    modes: list[str] = Field(
        ["full", "whole_image", "text_question", "no_search"], description="decode modes evaluated (paper Table 1 rows)"
    )
    retrieval_k: int = Field(5, ge=1, le=100, description="k of the retrieval check (hit@1 and hit@k)")
    seeds: list[int] | None = Field(
        None,
        min_length=1,
        description="run the whole demo once per seed (world and training seed) in <output>/seed-<s>, then "
        "write <output>/seeds.{md,json}: accuracy per mode as mean +/- spread, the ordering per seed",
    )
