"""The transfer experiment's machinery on a tiny synthetic catalogue with the real backbone: splits by id, legal
pairs, every planned run written once, a resume that skips finished runs and source models, refusals."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.transfer.experiment import Experiment, macro_auroc, read_runs
from core.transfer.protocol import CPU_PROTOCOL
from core.transfer.splits import legal_pairs, make_split

TINY = replace(CPU_PROTOCOL, image_size=32, source_steps=2, target_steps=2, batch_size=4, train_per_class=3)


@pytest.fixture(scope="module")
def model():
    import torch

    from core.features.backbones import load_backbone
    torch.set_num_threads(1)
    loaded = load_backbone(device="cpu", backend="torch")
    return loaded.model, loaded.spec.mean, loaded.spec.std


def make_images(root: Path) -> Path:
    """Three 2-class tasks of 8 images per class (a colour per class, noise per image); 'c' shares images with 'b'."""
    rng = np.random.default_rng(0)
    tasks = {}
    for task, colours in {"a": [(200, 30, 30), (30, 30, 200)], "b": [(30, 200, 30), (120, 120, 120)],
                          "c": [(250, 250, 0), (0, 0, 0)]}.items():
        for index, colour in enumerate(colours):
            folder = root / task / f"class{index}"
            folder.mkdir(parents=True)
            for number in range(8):
                pixels = np.clip(np.array(colour) + rng.normal(0, 40, (40, 40, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{number:03d}.png")
        tasks[task] = {"modality": "photo", "shares_images_with": ["b"] if task == "c" else None}
    tasks["b"]["shares_images_with"] = ["c"]
    (root / "SOURCES.json").write_text(json.dumps({"tasks": tasks}))
    return root


def test_split_is_class_balanced_disjoint_and_repeatable():
    classes = {"x": [f"x/{i}.jpg" for i in range(50)], "y": [f"y/{i}.jpg" for i in range(7)]}
    split = make_split(classes, train_per_class=10, seed=0)
    assert sum(i.startswith("x/") for i in split["train"]) == 10
    assert sum(i.startswith("y/") for i in split["train"]) == 3  # at most half of a small class
    assert not set(split["train"]) & set(split["test"])
    assert len(split["train"]) + len(split["test"]) == 57
    assert make_split(classes, 10, 0) == split and make_split(classes, 10, 1) != split


def test_legal_pairs_exclude_the_task_and_shared_images():
    tasks = {"a": {}, "b": {"shares_images_with": ["c"]}, "c": {}}
    assert legal_pairs(tasks) == [("b", "a"), ("c", "a"), ("a", "b"), ("a", "c")]


def test_macro_auroc_matches_hand_worked_values():
    assert macro_auroc(np.array([0, 0, 1, 1]), np.array([[.9, .1], [.6, .4], [.65, .35], [.2, .8]])) == 0.75
    perfect = np.eye(3)[[0, 1, 2, 0]] * 0.7 + 0.1  # rows sum to 1
    assert macro_auroc(np.array([0, 1, 2, 0]), perfect) == 1.0


def test_every_run_written_once_and_resume_skips_finished_runs(tmp_path, model):
    images = make_images(tmp_path / "images")
    out = tmp_path / "out"
    splits = tmp_path / "splits.json"

    def experiment(protocol=TINY):
        return Experiment(images, out, splits, protocol, *model, device="cpu", log=lambda line: None)

    ran = experiment().run()
    # targets a, b, c; legal sources: a <- b, c; b <- a; c <- a; 3 seeds, plus a baseline per target and seed
    assert ran == 3 * (3 + 4)
    runs = read_runs(out)
    assert len(runs) == ran and all(0.0 <= r["auroc"] <= 1.0 for r in runs)
    assert {(r["source"], r["target"]) for r in runs if r["kind"] == "transfer"} == \
           {("b", "a"), ("c", "a"), ("a", "b"), ("a", "c")}
    stored = json.loads(splits.read_text())["tasks"]["a"]
    assert len(stored["train"]) == 6 and all(i.split("/")[0] in ("class0", "class1") for i in stored["test"])
    sources = sorted(p.name for p in (out / "sources").iterdir())
    assert sources == [f"{s}_seed{k}.pt" for s in "abc" for k in range(3)]

    with pytest.raises(FileExistsError, match="--resume"):
        experiment().run()
    lines = (out / "runs.jsonl").read_text().splitlines()
    (out / "runs.jsonl").write_text("\n".join(lines[:-2]) + "\n" + lines[-2][:20])  # a run killed while writing
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "sources").iterdir()}
    assert experiment().run(resume=True) == 2
    assert len(read_runs(out)) == ran
    assert {p.name: p.stat().st_mtime_ns for p in (out / "sources").iterdir()} == stamps  # not retrained
    assert experiment().run(resume=True) == 0
    with pytest.raises(ValueError, match="another budget"):
        experiment(replace(TINY, lr=1e-2)).run(resume=True)


def test_full_fine_tuning_path_trains_every_layer(tmp_path, model):
    images = make_images(tmp_path / "images")
    full = replace(TINY, frozen_blocks=-1, seeds=(0,))
    experiment = Experiment(images, tmp_path / "out", tmp_path / "s.json", full, *model, device="cpu",
                            log=lambda line: None)
    assert len(experiment.trunk) == 0
    assert experiment.run(targets=["b"]) == 2  # baseline and a -> b
    assert experiment.data("b").inputs.dtype.is_floating_point is False  # the cache holds the images (uint8)


def test_stored_splits_are_reused_and_another_rule_is_refused(tmp_path):
    from core.transfer.splits import load_or_make_splits

    images = make_images(tmp_path / "images")
    made = load_or_make_splits(tmp_path / "splits.json", images, 3, 0)
    (images / "a" / "class0" / "000.png").unlink()  # the stored split wins over the folder's current contents
    assert load_or_make_splits(tmp_path / "splits.json", images, 3, 0) == made
    with pytest.raises(ValueError, match="train_per_class 3, seed 0"):
        load_or_make_splits(tmp_path / "splits.json", images, 4, 0)
