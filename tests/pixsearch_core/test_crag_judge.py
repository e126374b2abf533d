"""CRAG-MM: gold in the HF row layout (JSONL and parquet), the LLM judge against a real local HTTP server
answering recorded verdicts, the verdict cache, retries, and `eval score` output keys."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs import cli
from pixsearch_core.metrics.judge import JudgeConfig, LLMJudge, parse_verdict

ROWS = [  # one single-turn session each; ego rows have no image_url
    {
        "session_id": "s1",
        "image_url": None,
        "turns": {"interaction_id": ["t1"], "query": ["what is this?"], "domain": [0]},
        "answers": {"interaction_id": ["t1"], "ans_full": ["a golden retriever"]},
    },
    {
        "session_id": "s2",
        "image_url": None,
        "turns": {"interaction_id": ["t2"], "query": ["how old?"], "domain": [1]},
        "answers": {"interaction_id": ["t2"], "ans_full": ["12 years"]},
    },
    {
        "session_id": "s3",
        "image_url": "http://x/y.jpg",
        "turns": [{"interaction_id": "t3", "query": "where?"}],
        "answers": [{"interaction_id": "t3", "ans_full": "Paris"}],
    },
    {
        "session_id": "04d98259-27af-41b1-a7be-5798fd1b8e95",
        "image_url": None,  # in SESSIONS_TO_SKIP
        "turns": {"interaction_id": ["skip"], "query": ["q"]},
        "answers": {"interaction_id": ["skip"], "ans_full": ["a"]},
    },
]
PREDS = [
    {"id": "t1", "prediction": "It's a golden retriever dog."},
    {"id": "t2", "prediction": "I don’t know."},
    {"id": "t3", "prediction": " paris "},
]
VERDICTS = {"It's a golden retriever dog.": "The prediction names the breed.\nResult: CORRECT"}


@pytest.fixture
def judge_server():
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1 answering recorded verdicts; fails `fail` times."""
    state = {"requests": [], "fail": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state["requests"].append((self.path, body, self.headers.get("Authorization")))
            if state["fail"] > 0:
                state["fail"] -= 1
                self.send_response(500), self.end_headers()
                return
            pred = body["messages"][1]["content"].split("Prediction: ")[1].split("\n")[0]
            content = VERDICTS.get(pred, "Unrelated answer.\nResult: WRONG")
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield state
    server.shutdown()
    server.server_close()


def test_parse_checks_wrong_before_correct():
    assert parse_verdict("Result: CORRECT\nResult: WRONG") is False
    assert parse_verdict("blah\nCORRECT") is True and parse_verdict("It is CORRECT\nbut WRONG") is False
    assert parse_verdict("no verdict") is None and parse_verdict(None) is None


def test_judge_protocol_cache_and_retries(judge_server, tmp_path, monkeypatch):
    monkeypatch.setenv("PIXSEARCH_JUDGE_API_KEY", "sk-test")
    judge = LLMJudge(JudgeConfig(base_url=judge_server["url"], model="judge-x", cache_dir=str(tmp_path), backoff_s=0))
    assert judge("what is this?", "a golden retriever", "It's a golden retriever dog.") is True
    path, body, auth = judge_server["requests"][0]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-test"
    assert body["model"] == "judge-x" and body["temperature"] == 0.0 and body["max_tokens"] == 1024
    assert body["messages"][1]["content"] == (
        "Your task is to judge if the prediction is correct or not based on the ground truth answer. Now your turn:"
        "\n\nQuestion: what is this?\nGround Truth: a golden retriever\nPrediction: It's a golden retriever dog.\n"
        "Give your output below:\n"
    )
    assert judge("what is this?", "a golden retriever", "It's a golden retriever dog.") is True
    assert judge.calls == 1  # second answer came from the cache
    judge_server["fail"] = 2  # two 500s, then a verdict: 3 attempts
    assert judge("q", "g", "nope") is False and judge.calls == 4
    judge_server["fail"] = 3
    from pixsearch_core.metrics.crag import JudgeUnavailable

    with pytest.raises(JudgeUnavailable, match="after 3 attempts"):
        judge("q", "g", "other")
    assert judge.calls == 7


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_eval_score_crag_mm(fmt, judge_server, tmp_path, capsys):
    gold = tmp_path / "gold"
    gold.mkdir()
    if fmt == "jsonl":
        (gold / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    else:
        rows = [r for r in ROWS if isinstance(r["turns"], dict)]  # parquet: the v0.1.2 dict-of-columns rows
        pq.write_table(pa.Table.from_pylist(rows), gold / "validation-00000-of-00001.parquet")
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps(p) + "\n" for p in PREDS if fmt == "jsonl" or p["id"] != "t3"))
    argv = ["eval", "score", "--benchmark", "crag_mm", "--gold", str(gold), "--predictions", str(preds)]
    assert cli.main(argv) == 0
    no_judge = json.loads(capsys.readouterr().out)
    assert cli.main(argv + ["--judge", judge_server["url"], "--judge-cache", str(tmp_path / "cache")]) == 0
    judged = json.loads(capsys.readouterr().out)
    assert len(judge_server["requests"]) == 1  # only the non-exact, non-missing answer
    assert set(judged) == {"all", "ego", "non_ego"}
    assert set(judged["all"]) == {"accuracy", "missing", "hallucination", "truthfulness", "exact_match", "n"}
    assert judged["ego"] == {
        "accuracy": 0.5,
        "missing": 0.5,
        "hallucination": 0.0,
        "truthfulness": 0.5,
        "exact_match": 0.0,
        "n": 2,
    }
    assert no_judge["ego"]["accuracy"] == 0.0 and no_judge["ego"]["hallucination"] == 0.5
    if fmt == "jsonl":
        assert judged["non_ego"] == {
            "accuracy": 1.0,
            "missing": 0.0,
            "hallucination": 0.0,
            "truthfulness": 0.0,
            "exact_match": 1.0,
            "n": 1,
        }  # N == 1 -> truthfulness 0.0
        assert judged["all"]["accuracy"] == pytest.approx(2 / 3) and judged["all"]["n"] == 3
        assert judged["all"]["truthfulness"] == pytest.approx((2 * 2 + 1) / 3 - 1)
