"""Build mechsel/data (the task data that ships with the package) from full copies of the data.

    .venv/bin/python scripts/build_packaged_data.py [--source ../shared/data] [--check]

Deterministic: the same source files give byte-identical output (gzip without a time stamp or
file name, rows copied byte for byte, JSON written with sorted keys). ``--check`` rebuilds into a
temporary folder and fails if the result differs from the committed mechsel/data.

What is kept (see mechsel/tasks/packaged.py for how it is read):
- small splits whole (SST-2 validation and test, RTE train and validation);
- of the large splits (SST-2 train, AG News train and test), the rows reached by the label-
  stratified draws of ``make_splits`` with split seeds ``SEEDS`` of up to ``POOL_ROWS``
  candidates + dev queries (dev and pool share a split's label queues, so one draw of
  ``POOL_ROWS + SLACK`` candidates covers every dev/pool pair within ``POOL_ROWS``) and up to
  ``TEST_ROWS`` test queries, the unstratified draws of split seed 0 of the same sizes, and each
  split's first ``HEAD`` rows (loaders that read "the first n rows").
The demo configs (SST-2: 200 candidates, 32 dev, 80 test; AG News: 48 + 24 dev, 48 test; split
seed 0) and the unit tests' draws on the real data lie inside this.
"""

from __future__ import annotations

import argparse
import filecmp
import gzip
import hashlib
import io
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mechsel.tasks import SplitConfig, get_task, make_splits  # noqa: E402
from mechsel.tasks.loading import rows_to_examples  # noqa: E402
from mechsel.tasks.splits import word_count  # noqa: E402

OUT = REPO / "mechsel" / "data"
SEEDS = (0, 1, 2)
POOL_ROWS = 1100
TEST_ROWS = 500
SLACK = 8
"""Extra candidates per covering draw: a dev/pool pair's label counts are each within one of
their shares, so together within two of a single draw's of the same total."""

PLAN: dict[str, dict[str, object]] = {
    "sst2": {"whole": ("validation", "test"), "partial": {"train": 3000}},
    "ag_news": {"whole": (), "partial": {"train": 600, "test": 0}},
    "rte": {"whole": ("train", "validation"), "partial": {}},
}
"""Task → splits shipped whole, and partial splits with their number of leading rows kept."""

ABOUT = {
    "sst2": {
        "hub_id": "stanfordnlp/sst2",
        "source": "GLUE SST-2 as distributed with the GLUE data (glue_data/SST-2), fetched from the public repository "
        "eyalbd2/Reproducing-AutoPrompt; the test split here is the labelled SST test set (the hub's test split has no labels).",
        "terms": "The Stanford Sentiment Treebank (Socher et al., 2013) is a research dataset of movie-review sentences from "
        "rottentomatoes.com; it is distributed for research without an explicit data licence. Cite the SST paper and GLUE "
        "(Wang et al., 2018) when you use it.",
    },
    "ag_news": {
        "hub_id": "fancyzhx/ag_news",
        "source": "AG's news topic classification data: the train rows are a 10,001-row subset of the 120k train split, "
        "fetched from forest-snow/alps (data/agnews); the test rows are the 7,600-row test split, fetched from "
        "madhubandru/Text-Classification-on-News-Articles-using-BERT-Framework (ag_news_csv/test.csv). Text is the article "
        "description only (the hub's text also carries the title).",
        "terms": "AG's corpus of news articles (Gulli; Zhang, Zhao & LeCun, 2015) is provided for research and non-commercial "
        "use only; there is no other explicit licence. Do not use it commercially.",
    },
    "rte": {
        "hub_id": "nyu-mll/glue (config rte)",
        "source": "GLUE RTE (the Recognising Textual Entailment challenges 1, 2, 3 and 5), from the Hugging Face glue/rte "
        "parquet files, fetched from Ji-Yishan/MIEC-FYP.",
        "terms": "Research dataset distributed as part of GLUE without an explicit data licence; cite the RTE challenges and "
        "GLUE when you use it.",
    },
}


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as fh:
        fh.write(data)
    return buf.getvalue()


def _source_lines(path: Path) -> list[bytes]:
    """Non-blank lines of a JSON-lines file (as the loader counts rows), without line ends or BOM."""
    lines = [line.rstrip(b"\r\n") for line in path.read_bytes().splitlines()]
    if lines and lines[0].startswith(b"\xef\xbb\xbf"):
        lines[0] = lines[0][3:]
    return [line for line in lines if line.strip()]


def _covered_positions(task: str, source: Path) -> dict[str, set[int]]:
    """Split → positions that the covering draws reach."""
    cfg = get_task(task)
    ids = {}
    for split in {cfg.pool_split, cfg.dev_split or cfg.pool_split, cfg.test_split}:
        examples = rows_to_examples(cfg, [json.loads(line) for line in _source_lines(source / cfg.folder / f"{split}.jsonl")], split)
        ids[split] = {e.id: i for i, e in enumerate(examples)}
    reached: dict[str, set[int]] = {split: set() for split in ids}
    draws = [SplitConfig(pool_size=POOL_ROWS + SLACK, dev_size=0, test_size=TEST_ROWS + SLACK, seed=s) for s in SEEDS]
    draws.append(SplitConfig(pool_size=POOL_ROWS, dev_size=0, test_size=TEST_ROWS, seed=0, stratify=False))
    for config in draws:
        s = make_splits(cfg, config, data_dir=source)
        for subset in (s.pool, s.dev, s.test):
            for e in subset:
                reached[e.split].add(ids[e.split][e.id])
    return reached


def build(source: Path, out: Path) -> dict[str, object]:
    """Write the packaged data into ``out`` and return the manifest."""
    tasks: dict[str, object] = {}
    for task, plan in PLAN.items():
        cfg = get_task(task)
        reached = _covered_positions(task, source) if plan["partial"] else {}
        splits: dict[str, object] = {}
        for split in sorted([*plan["whole"], *plan["partial"]]):  # type: ignore[misc]
            src = source / cfg.folder / f"{split}.jsonl"
            lines = _source_lines(src)
            partial = split in plan["partial"]  # type: ignore[operator]
            keep = sorted(reached[split] | set(range(min(len(lines), plan["partial"][split])))) if partial else range(len(lines))  # type: ignore[index]
            rows_file = f"{cfg.folder}/{split}.jsonl.gz"
            data = _gzip(b"".join(lines[i] + b"\n" for i in keep))
            (out / cfg.folder).mkdir(parents=True, exist_ok=True)
            (out / rows_file).write_bytes(data)
            entry: dict[str, object] = {
                "file": rows_file,
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
                "rows": len(keep),
                "split_rows": len(lines),
                "source_file": f"{cfg.folder}/{split}.jsonl",
                "source_sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
            }
            if partial:
                examples = rows_to_examples(cfg, [json.loads(line) for line in lines], split)
                meta = {
                    "split_rows": len(lines),
                    "positions": list(keep),
                    "labels": [e.label for e in examples],
                    "words": [word_count(e) for e in examples],
                }
                index_file = f"{cfg.folder}/{split}.index.json.gz"
                index = _gzip(json.dumps(meta, separators=(",", ":")).encode())
                (out / index_file).write_bytes(index)
                entry["index"] = {"file": index_file, "sha256": hashlib.sha256(index).hexdigest(), "bytes": len(index)}
            splits[split] = entry
        tasks[cfg.folder] = {**ABOUT[task], "splits": splits}
    manifest = {
        "format": 1,
        "built_by": "scripts/build_packaged_data.py",
        "built_from": "the full JSON-lines copies in ../shared/data (see its README.md)",
        "coverage": {
            "whole_splits": "shipped whole: every draw from them is the full data's",
            "partial_splits": (
                f"the rows reached by label-stratified draws with split seeds {list(SEEDS)} of up to {POOL_ROWS} candidates + dev "
                f"queries from a split and up to {TEST_ROWS} test queries, unstratified draws of split seed 0 of the same sizes "
                "(both without min_words), and the split's first rows; the index file lists each row's position in the full split "
                "and every full-split row's label and word count, so these draws give the full data's examples; a draw that "
                "needs a row that is not shipped raises"
            ),
        },
        "tasks": tasks,
    }
    text = json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    (out / "MANIFEST.json").write_text(text, encoding="utf-8")
    return manifest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=REPO / ".." / "shared" / "data", help="full copies of the data")
    parser.add_argument("--check", action="store_true", help="fail if mechsel/data differs from a fresh build")
    args = parser.parse_args()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            build(args.source, Path(tmp))
            diff = filecmp.dircmp(tmp, OUT)
            bad = (
                diff.diff_files
                + diff.left_only
                + diff.right_only
                + [f"{d}/{f}" for d, c in diff.subdirs.items() for f in c.diff_files + c.left_only + c.right_only]
            )
            print("mechsel/data is up to date" if not bad else f"mechsel/data differs from a fresh build: {bad}")
            return 1 if bad else 0
    for old in OUT.glob("*/*.gz"):
        old.unlink()
    manifest = build(args.source, OUT)
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    for task, entry in manifest["tasks"].items():  # type: ignore[union-attr]
        for split, info in entry["splits"].items():
            print(
                f"{task}/{split}: {info['rows']} of {info['split_rows']} rows, {info['bytes'] + info.get('index', {}).get('bytes', 0)} bytes"
            )
    print(f"mechsel/data: {total} bytes in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
