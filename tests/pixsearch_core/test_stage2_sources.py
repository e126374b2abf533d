"""Stage-2 source readers in the published layouts: A-OKVQA, WebQA (imgs.tsv), OK-VQA; bad rows are quarantined."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from pixsearch_core.stage2.config import SourceConfig
from pixsearch_core.stage2.sources import Bad, Item, read_source
from pixsearch_core.storage import ObjectStore
from tests.stage2_fakes import write_okvqa


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format="JPEG")
    return buf.getvalue()


def test_aokvqa(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / f"{7:012d}.jpg").write_bytes(_jpeg())
    rows = [
        {"question_id": "a1", "image_id": 7, "question": "What sport?", "direct_answers": ["tennis"] * 7 + ["golf"]},
        {"question_id": "a2", "image_id": 8, "question": "Missing picture?", "direct_answers": ["x"]},
        {"question_id": "a3", "image_id": 7, "question": "No answers?", "direct_answers": []},
    ]
    (tmp_path / "aokvqa_v1p0_train.json").write_text(json.dumps(rows))
    out = list(
        read_source(
            SourceConfig(reader="aokvqa", path=str(tmp_path), images=str(tmp_path / "img")),
            ObjectStore(),
            str(tmp_path / "scratch"),
        )
    )
    items = [o for o in out if isinstance(o, Item)]
    assert [(i.id, i.answers) for i in items] == [("aokvqa/a1", ["tennis", "golf"])]  # most frequent first
    assert {b.id for b in out if isinstance(b, Bad)} == {"aokvqa/a2", "aokvqa/a3"}


def test_webqa_pictures_come_from_imgs_tsv(tmp_path):
    data = {
        "g1": {
            "Q": '"What colour is the roof?"',
            "A": ['"Red"'],
            "split": "train",
            "Qcate": "color",
            "img_posFacts": [{"image_id": 30, "caption": "a house"}],
        },
        "g2": {"Q": "text only", "A": ["x"], "split": "train", "img_posFacts": []},
        "g3": {"Q": "val one", "A": ["y"], "split": "val", "img_posFacts": [{"image_id": 30}]},
        "g4": {"Q": "picture missing", "A": ["z"], "split": "train", "img_posFacts": [{"image_id": 99}]},
    }
    (tmp_path / "WebQA_train_val.json").write_text(json.dumps(data))
    (tmp_path / "imgs.tsv").write_bytes(b"30\t" + base64.b64encode(_jpeg()) + b"\n31\tAAAA\n")
    out = list(read_source(SourceConfig(reader="webqa", path=str(tmp_path)), ObjectStore(), str(tmp_path / "s")))
    items = [o for o in out if isinstance(o, Item)]
    assert [(i.id, i.question, i.answers) for i in items] == [("webqa/g1", "What colour is the roof?", ["Red"])]
    assert Image.open(items[0].image).size == (8, 8)
    assert [b.id for b in out if isinstance(b, Bad)] == ["webqa/g4"]


def test_okvqa_and_limit(tmp_path):
    root = write_okvqa(tmp_path / "ok")
    out = list(
        read_source(
            SourceConfig(reader="okvqa", path=str(root), images=str(root / "images"), limit=3),
            ObjectStore(),
            str(tmp_path),
        )
    )
    assert [o.id for o in out] == ["okvqa/1000", "okvqa/1001", "okvqa/1002"]
    assert out[0].answers == ["answer 0"] and out[0].image.endswith("COCO_train2014_000000000000.jpg")


def test_a_truncated_source_file_is_an_error_naming_it(tmp_path):
    (tmp_path / "OpenEnded_mscoco_train2014_questions.json").write_text('{"questions": [{"image_id": 1, "quest')
    (tmp_path / "mscoco_train2014_annotations.json").write_text('{"annotations": []}')
    with pytest.raises(ValueError, match="OpenEnded_mscoco_train2014_questions.json: not valid JSON"):
        list(read_source(SourceConfig(reader="okvqa", path=str(tmp_path)), ObjectStore(), str(tmp_path / "s")))
