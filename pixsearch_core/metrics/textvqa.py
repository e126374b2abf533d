"""TextVQA accuracy (docs/metrics.md §7), as LLaVA's `eval_textvqa.py` computes it through mmf's
`m4c_evaluator.TextVQAAccuracyEvaluator` and `EvalAIAnswerProcessor`. Reproduced exactly, quirks included:

- punctuation handling looks at the text *before* any replacement; the digit-comma test can never fire (commas
  were already removed) but is kept; the period regex's lookbehind is misspelt in the original (`(?!<=\\d)`, a
  lookahead), so a period is dropped whenever no digit follows; `re.sub(..., re.UNICODE)` passes 32 as *count*,
  so at most 32 periods are removed;
- contractions are looked up after lower-casing, so the capitalised keys ("Im", "Ive") never match, and
  "somebody'd" maps to "somebodyd" as in the original table.
- score of an answer a = mean over the 10 annotators i of min(1, #{j != i : gt_j == a} / 3); the prediction's
  score is that of its processed form, 0 if no annotator gave it.
"""

from __future__ import annotations

import re

from pixsearch_core.registry import register

# The VQA contraction table (key -> value), as pairs "key=value" separated by spaces.
_CONTRACTIONS = dict(
    pair.split("=")
    for pair in """
aint=ain't arent=aren't cant=can't couldve=could've couldnt=couldn't couldn'tve=couldn't've couldnt've=couldn't've
didnt=didn't doesnt=doesn't dont=don't hadnt=hadn't hadnt've=hadn't've hadn'tve=hadn't've hasnt=hasn't
havent=haven't hed=he'd hed've=he'd've he'dve=he'd've hes=he's howd=how'd howll=how'll hows=how's Id've=I'd've
I'dve=I'd've Im=I'm Ive=I've isnt=isn't itd=it'd itd've=it'd've it'dve=it'd've itll=it'll let's=let's maam=ma'am
mightnt=mightn't mightnt've=mightn't've mightn'tve=mightn't've mightve=might've mustnt=mustn't mustve=must've
neednt=needn't notve=not've oclock=o'clock oughtnt=oughtn't ow's'at='ow's'at 'ows'at='ow's'at 'ow'sat='ow's'at
shant=shan't shed've=she'd've she'dve=she'd've she's=she's shouldve=should've shouldnt=shouldn't
shouldnt've=shouldn't've shouldn'tve=shouldn't've somebody'd=somebodyd somebodyd've=somebody'd've
somebody'dve=somebody'd've somebodyll=somebody'll somebodys=somebody's someoned=someone'd someoned've=someone'd've
someone'dve=someone'd've someonell=someone'll someones=someone's somethingd=something'd
somethingd've=something'd've something'dve=something'd've somethingll=something'll thats=that's thered=there'd
thered've=there'd've there'dve=there'd've therere=there're theres=there's theyd=they'd theyd've=they'd've
they'dve=they'd've theyll=they'll theyre=they're theyve=they've twas='twas wasnt=wasn't wed've=we'd've
we'dve=we'd've weve=we've werent=weren't whatll=what'll whatre=what're whats=what's whatve=what've whens=when's
whered=where'd wheres=where's whereve=where've whod=who'd whod've=who'd've who'dve=who'd've wholl=who'll
whos=who's whove=who've whyll=why'll whyre=why're whys=why's wont=won't wouldve=would've wouldnt=wouldn't
wouldnt've=wouldn't've wouldn'tve=wouldn't've yall=y'all yall'll=y'all'll y'allll=y'all'll yall'd've=y'all'd've
y'alld've=y'all'd've y'all'dve=y'all'd've youd=you'd youd've=you'd've you'dve=you'd've youll=you'll
youre=you're youve=you've
""".split()
)
_NUMBERS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_ARTICLES = ("a", "an", "the")
_PUNCTUATIONS = [
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
]
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(?<=\d)(\,)+(?=\d)")
_PERIOD_STRIP_COUNT = int(re.UNICODE)  # the original passes re.UNICODE (32) as sub()'s count


def _punctuation(text: str) -> str:
    out = text
    digit_comma = _COMMA_STRIP.search(text) is not None
    for p in _PUNCTUATIONS:
        if p + " " in text or " " + p in text or digit_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, _PERIOD_STRIP_COUNT)


def _digits_articles(text: str) -> str:
    words = [_NUMBERS.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in _ARTICLES]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words)


def process_answer(answer: str) -> str:
    """`EvalAIAnswerProcessor.__call__`: the normal form in which TextVQA answers are compared."""
    text = answer.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return _digits_articles(_punctuation(text))


def answer_scores(gold_answers: list[str]) -> dict[str, float]:
    """`_compute_answer_scores`: the soft score of every distinct processed gold answer."""
    processed = [process_answer(a) for a in gold_answers]
    n = len(processed)
    scores = {}
    for answer in set(processed):
        count = processed.count(answer)
        scores[answer] = sum(min(1.0, (count - (p == answer)) / 3) for p in processed) / n
    return scores


@register("metric", "textvqa_accuracy")
def textvqa_accuracy(prediction: str, gold_answers: list[str]) -> float:
    """The soft VQA accuracy of one prediction against its (normally 10) annotator answers."""
    if not gold_answers:
        raise ValueError("TextVQA accuracy needs the annotators' answers; got none")
    return answer_scores(gold_answers).get(process_answer(prediction), 0.0)
