"""A real HTTP server speaking the chat-completions protocol, scripted for the stage-2 tests, and OK-VQA-layout
data about the tiny search index's documents.

The "model" answers each of the five stage-2 prompts (told apart by their first words) from the question text:
questions name a topic word and an item number ("What is the volcano item3 known for?"); the generated response
states the topic after its search, so evidence support holds when the search finds that item's document.
Faults are scripted per request: ("429", retry_after), ("500",), ("slow", seconds), ("badjson",), ("400",).
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.search_fixtures import TOPICS, picture


class FakeLLM:
    def __init__(self, delay_s: float = 0.0):
        self.faults: list[tuple] = []
        self.requests = 0
        self.delay_s = delay_s
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests += 1
                    fault = fake.faults.pop(0) if fake.faults else None
                if fake.delay_s:
                    time.sleep(fake.delay_s)
                if fault and fault[0] == "slow":
                    time.sleep(fault[1])
                if fault and fault[0] in ("429", "500", "400"):
                    self.send_response(int(fault[0]))
                    if fault[0] == "429":
                        self.send_header("Retry-After", str(fault[1]))
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                    return
                text = answer(body)
                payload = (
                    b'{"choices": ['
                    if fault and fault[0] == "badjson"
                    else json.dumps(
                        {
                            "choices": [{"message": {"role": "assistant", "content": text}}],
                            "usage": {"prompt_tokens": 100, "completion_tokens": 20},
                        }
                    ).encode()
                )
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _text(body: dict) -> str:
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else next(c["text"] for c in content if c["type"] == "text")


def answer(body: dict) -> str:
    prompt = _text(body)
    q = re.findall(r"^Question: (.*)$", prompt, re.M)[-1]
    topic, item = re.search(r"the (\w+) (item\d+)", q).groups() if "item" in q else ("thing", "item0")
    if prompt.startswith("You decide"):
        return (
            "Type: Visual Reasoning - Counting\nRetrieval: no"
            if q.startswith("How many")
            else "Type: Factoid / KB Questions\nRetrieval: yes"
        )
    if prompt.startswith("Break the"):
        return f"1) What is the {topic} {item} known for? [retrieval: yes]"
    if prompt.startswith("Write the answer"):
        gold = re.findall(r"^Gold answer: (.*)$", prompt, re.M)[-1].split(" | ")[0]
        seed = body.get("seed", 0)
        good = f"The {topic} <search> is {topic.capitalize()} {item}. Answer: {gold}"
        return good if seed == 1 else f"The {topic} is {topic.capitalize()} {item}. Answer: {gold} <search>"
    if prompt.startswith("Several candidate"):
        n = len(re.findall(r"^Candidate \d+:", prompt, re.M))
        best = next(i for i in range(1, n + 1) if re.search(rf"Candidate {i}:\n[^\n]*<search> is", prompt))
        return f"Best: {best}"
    if prompt.startswith("A response to"):
        return f"1) TEXT | {topic} {item}"
    raise AssertionError(f"unknown prompt: {prompt[:80]}")


def write_okvqa(root: Path, n: int = 6, wrong: int = 4) -> Path:
    """n questions about the tiny index's documents item0..; question `wrong` asks about an item whose topic
    word differs from its document's (so its evidence cannot support the response), and the last one is a
    counting question (dropped at selection)."""
    (root / "images").mkdir(parents=True)
    questions, annotations = [], []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)].split()[0]
        if i == wrong:
            topic = "zebra"
        q = "How many things are there?" if i == n - 1 else f"What is the {topic} item{i} known for?"
        questions.append({"image_id": i, "question": q, "question_id": 1000 + i})
        annotations.append({"question_id": 1000 + i, "answers": [{"answer": f"answer {i}"}] * 3})
        picture(i).save(root / "images" / f"COCO_train2014_{i:012d}.jpg", format="PNG")
    (root / "OpenEnded_mscoco_train2014_questions.json").write_text(json.dumps({"questions": questions}))
    (root / "mscoco_train2014_annotations.json").write_text(json.dumps({"annotations": annotations}))
    return root
