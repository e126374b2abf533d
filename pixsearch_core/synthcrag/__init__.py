"""SynthCRAG: a seeded, generated knowledge world where searching the segmented region must win.

Entities are procedural icons (shape x colour x pattern) with encyclopedia documents of facts (category, maker,
year, origin); makers and places have documents of their own for multi-hop questions. Scenes put a target entity
among distractors (egocentric: small target, clutter) or alone and large (non-egocentric). Questions cover the
paper's types (identification, factoid, multi-hop, and questions answerable without search) with gold answers,
gold masks and gold search-interleaved trajectories. Train and test entities are disjoint.

    world = generate_world(WorldConfig(seed=0))
    write_synthcrag(world, "out/synthcrag", store)     # corpus, stage-1/stage-2 data, benchmark splits
"""

from pixsearch_core.synthcrag.world import World, WorldConfig, generate_world

__all__ = ["World", "WorldConfig", "generate_world"]
