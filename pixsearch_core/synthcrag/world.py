"""The knowledge world of SynthCRAG: entities, makers and places with their documents. Pure, seeded, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from pydantic import Field

from pixsearch_core.config import Config

SHAPES = ("circle", "square", "triangle", "diamond", "star", "hexagon", "cross", "ring")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 20),
    "yellow": (240, 210, 30),
    "green": (40, 170, 60),
    "teal": (20, 160, 160),
    "blue": (40, 80, 220),
    "purple": (140, 60, 190),
    "pink": (240, 120, 180),
    "brown": (130, 80, 40),
    "black": (30, 30, 30),
}
PATTERNS = ("solid", "striped", "dotted", "checkered")
CATEGORIES = (
    "lamp",
    "kettle",
    "clock",
    "radio",
    "camera",
    "bicycle bell",
    "compass",
    "music box",
    "telescope",
    "typewriter",
    "barometer",
    "metronome",
)
_SYLLABLES = (
    "ka",
    "lo",
    "mi",
    "ra",
    "ven",
    "tor",
    "sa",
    "li",
    "dor",
    "ne",
    "zu",
    "pa",
    "quin",
    "bel",
    "fa",
    "ro",
    "tis",
    "mar",
    "ol",
    "ga",
    "vi",
    "den",
    "sho",
    "ul",
)
#: facts an entity's document may leave out (the questions about them are then unanswerable from the corpus)
WITHHOLDABLE = ("year", "origin")
_COUNTRIES = ("Valdoria", "Norland", "Estmere", "Quorvia", "Sundral", "Marrow Isles")


class WorldConfig(Config):
    """How big the world is; the same seed gives the same world, bit for bit."""

    seed: int = 0
    n_entities: int = Field(240, ge=8, le=2880, description="icons; at most shapes x colours x patterns x accents")
    n_makers: int = Field(24, ge=2)
    n_places: int = Field(16, ge=2)
    test_fraction: float = Field(0.25, gt=0, lt=1, description="share of entities held out for the test split")


@dataclass(frozen=True)
class Place:
    id: str
    name: str
    country: str
    population: int

    def document(self) -> str:
        return (
            f"{self.name} is a city in {self.country}. It has a population of about {self.population:,}. "
            f"{self.name} is known for its workshops and its annual trade fair."
        )


@dataclass(frozen=True)
class Maker:
    id: str
    name: str
    founded: int
    headquarters: str  # place name

    def document(self) -> str:
        return (
            f"{self.name} is a manufacturer founded in {self.founded}. Its headquarters are in "
            f"{self.headquarters}. {self.name} designs and builds household instruments."
        )


@dataclass(frozen=True)
class Entity:
    id: str
    name: str
    shape: str
    colour: str
    pattern: str
    accent: str  # second colour of the pattern
    category: str
    maker: str  # maker name
    year: int
    origin: str  # place name
    split: str  # "train" | "test"
    withheld: str | None = None  # a fact its document leaves out ("year" or "origin"): asked, it is unanswerable

    @property
    def description(self) -> str:
        """The visible referring expression: 'the red striped star' ('solid' is left out)."""
        pat = "" if self.pattern == "solid" else f"{self.pattern} "
        return f"the {self.colour} {pat}{self.shape}"

    def document(self) -> str:
        # Deliberately no visual description: text search cannot identify the object, only image search can.
        when = {"year": f"in {self.origin}", "origin": f"in {self.year}"}.get(
            self.withheld or "", f"in {self.year} in {self.origin}"
        )
        return (
            f"{self.name} is a {self.category} made by {self.maker}. It was first produced {when}. "
            f"The {self.name} remains a well-known {self.category} among collectors."
        )


@dataclass
class World:
    config: WorldConfig
    entities: list[Entity]
    makers: list[Maker]
    places: list[Place]
    _by_name: dict[str, object] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self._by_name = {x.name: x for x in [*self.entities, *self.makers, *self.places]}

    def maker(self, name: str) -> Maker:
        return self._by_name[name]  # type: ignore[return-value]

    def place(self, name: str) -> Place:
        return self._by_name[name]  # type: ignore[return-value]

    def split(self, split: str) -> list[Entity]:
        return [e for e in self.entities if e.split == split]

    def withholding(self, withheld: dict[str, str]) -> World:
        """The same world with entity id -> withheld fact set (their documents leave that fact out)."""
        bad = {k: v for k, v in withheld.items() if v not in WITHHOLDABLE}
        if bad:
            raise ValueError(f"withheld facts {bad}; allowed: {', '.join(WITHHOLDABLE)}")
        return World(
            self.config,
            [replace(e, withheld=withheld.get(e.id, e.withheld)) for e in self.entities],
            self.makers,
            self.places,
        )


def random_names(rng: np.random.Generator, n: int, taken: set[str], syllables: tuple[int, int]) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        k = int(rng.integers(syllables[0], syllables[1] + 1))
        name = "".join(_SYLLABLES[i] for i in rng.integers(0, len(_SYLLABLES), size=k)).capitalize()
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


def generate_world(config: WorldConfig | None = None) -> World:
    """A world of `n_entities` visually distinct icons, their makers and places. Deterministic in the seed."""
    cfg = config or WorldConfig()
    rng = np.random.default_rng(cfg.seed)
    taken: set[str] = set()
    place_names = random_names(rng, cfg.n_places, taken, (2, 3))
    places = [
        Place(f"place-{i:03d}", nm, _COUNTRIES[int(rng.integers(len(_COUNTRIES)))], int(rng.integers(20, 900)) * 1000)
        for i, nm in enumerate(place_names)
    ]
    maker_names = [f"{nm} Works" for nm in random_names(rng, cfg.n_makers, taken, (2, 2))]
    makers = [
        Maker(f"maker-{i:03d}", nm, int(rng.integers(1850, 1990)), place_names[int(rng.integers(cfg.n_places))])
        for i, nm in enumerate(maker_names)
    ]
    looks = [(s, c, p, a) for s in SHAPES for c in COLOURS for p in PATTERNS for a in COLOURS if a != c]
    chosen = rng.choice(len(looks), size=cfg.n_entities, replace=False)
    names = random_names(rng, cfg.n_entities, taken, (2, 3))
    n_test = max(1, int(round(cfg.n_entities * cfg.test_fraction)))
    test_ids = set(rng.choice(cfg.n_entities, size=n_test, replace=False).tolist())
    entities = []
    for i, (li, nm) in enumerate(zip(chosen, names)):
        shape, colour, pattern, accent = looks[int(li)]
        maker = makers[int(rng.integers(cfg.n_makers))]
        entities.append(
            Entity(
                id=f"entity-{i:04d}",
                name=nm,
                shape=shape,
                colour=colour,
                pattern=pattern,
                accent=accent,
                category=CATEGORIES[int(rng.integers(len(CATEGORIES)))],
                maker=maker.name,
                year=int(rng.integers(max(maker.founded, 1900), 2024)),
                origin=place_names[int(rng.integers(cfg.n_places))],
                split="test" if i in test_ids else "train",
            )
        )
    return World(cfg, entities, makers, places)
