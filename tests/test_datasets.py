"""Datasets: split formats, frame folders, bad files, worker seeding, pickling, collate."""

from __future__ import annotations

import pickle
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from datatrees import counter_frames, frame_numbers, write_frame_folder, write_video
from torch.utils.data import DataLoader

from fame_aug.data import (
    HMDB51,
    UCF101,
    BackgroundBiasConfig,
    BadVideoWarning,
    KineticsFolder,
    VideoClipDataset,
    VideoList,
    collate_clips,
    eval_sampler,
    finetune_sampler,
    make_background_bias_dataset,
    pretrain_sampler,
)

SMALL = BackgroundBiasConfig(classes=3, train_per_class=3, test_per_class=2, frames=12, size=32, seed=1)


@pytest.fixture(scope="module")
def ucf_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    make_background_bias_dataset(out / "data", SMALL)
    return out / "data"


@pytest.fixture
def counter_tree(tmp_path: Path) -> Path:
    """root/<class>/<name>.avi: 2 classes x 2 videos of 60 counter frames."""
    for cls in ("jump", "wave"):
        for n in range(2):
            write_video(tmp_path / cls / f"{cls}_{n}.avi", counter_frames(60))
    return tmp_path


class TestUCF101:
    def test_train_and_test_splits(self, ucf_tree: Path) -> None:
        train = UCF101(ucf_tree / "videos", ucf_tree / "splits", split=1, train=True, frame_size=(32, 40))
        test = UCF101(ucf_tree / "videos", ucf_tree / "splits", train=False, sampler=eval_sampler(8, 1, 3))
        assert len(train) == 9 and len(test) == 6
        assert train.classes == ["LeftToRight", "RightToLeft", "MoveUp"]
        assert sorted(set(train.labels)) == [0, 1, 2] and sorted(set(test.labels)) == [0, 1, 2]
        clips, label, index = train[4]
        assert clips.shape == (1, 16, 32, 40, 3) and clips.dtype == torch.uint8
        assert label == train.labels[4] and index == 4
        assert test[0][0].shape == (3, 8, 128, 171, 3)

    @pytest.mark.parametrize(
        ("line", "message"),
        [
            ("LeftToRight/v_LeftToRight_g01_c01.avi", "expected '<Class>/<video> <label>'"),
            ("LeftToRight/v_LeftToRight_g01_c01.avi 7", "label must be an integer in 1..3"),
            ("LeftToRight/v_LeftToRight_g01_c01.avi 2", "label 2 is 'RightToLeft' but the video is in 'LeftToRight'"),
            ("LeftToRight/v_missing.avi 1", "does not exist"),
            ("LeftToRight/../../escape.avi 1", "escapes the dataset root"),
        ],
    )
    def test_split_errors_name_file_and_line(self, ucf_tree: Path, tmp_path: Path, line: str, message: str) -> None:
        splits = tmp_path / "splits"
        shutil.copytree(ucf_tree / "splits", splits)
        (splits / "trainlist02.txt").write_text("LeftToRight/v_LeftToRight_g01_c02.avi 1\n" + line + "\n")
        with pytest.raises(ValueError, match=message) as error:
            UCF101(ucf_tree / "videos", splits, split=2)
        assert "trainlist02.txt:2" in str(error.value)

    def test_bad_split_number_and_class_index(self, ucf_tree: Path, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="split must be one of"):
            UCF101(ucf_tree / "videos", ucf_tree / "splits", split=4)
        (tmp_path / "classInd.txt").write_text("1 A\n3 B\n")
        with pytest.raises(ValueError, match=re.escape("classInd.txt:2: class ids must run")):
            UCF101(ucf_tree / "videos", tmp_path)

    def test_frame_folder_stands_in_for_a_missing_file(self, ucf_tree: Path, tmp_path: Path) -> None:
        root = tmp_path / "videos"
        shutil.copytree(ucf_tree / "videos", root)
        video = root / "MoveUp" / "v_MoveUp_g01_c01.avi"
        frames = UCF101(root, ucf_tree / "splits", frame_size=None).videos
        index = [path for path, _ in frames].index(video)
        expected = UCF101(root, ucf_tree / "splits", frame_size=None, sampler=eval_sampler(4, 1, 1))[index][0]
        from fame_aug.data import read_frames

        write_frame_folder(video.with_suffix(""), read_frames(video, 0, 12, 1))
        video.unlink()
        folder = UCF101(root, ucf_tree / "splits", frame_size=None, sampler=eval_sampler(4, 1, 1))
        assert folder.videos[index][0] == video.with_suffix("")
        assert torch.equal(folder[index][0], expected)


class TestOtherFormats:
    def test_hmdb51(self, counter_tree: Path) -> None:
        for cls in ("jump", "wave"):
            (counter_tree / f"{cls}_test_split1.txt").write_text(f"{cls}_0.avi 1\n{cls}_1.avi 2\nmissing.avi 0\n")
        train = HMDB51(counter_tree, split=1, train=True)
        test = HMDB51(counter_tree, split=1, train=False)
        assert train.classes == ["jump", "wave"]
        assert [p.name for p, _ in train.videos] == ["jump_0.avi", "wave_0.avi"] and train.labels == [0, 1]
        assert [p.name for p, _ in test.videos] == ["jump_1.avi", "wave_1.avi"]
        (counter_tree / "wave_test_split1.txt").write_text("wave_0.avi 3\n")
        with pytest.raises(ValueError, match=re.escape("wave_test_split1.txt:1: expected '<name>.avi <0|1|2>'")):
            HMDB51(counter_tree, split=1)
        with pytest.raises(ValueError, match="no HMDB51 split files"):
            HMDB51(counter_tree, split=2)

    def test_kinetics_folders(self, tmp_path: Path) -> None:
        write_video(tmp_path / "train" / "b_class" / "x1.avi", counter_frames(20))
        write_video(tmp_path / "train" / "a_class" / "x2.avi", counter_frames(20))
        write_frame_folder(tmp_path / "train" / "a_class" / "x3", counter_frames(20))
        (tmp_path / "train" / "a_class" / "notes.txt").write_text("not a video")
        data = KineticsFolder(tmp_path, "train", sampler=eval_sampler(4, 2, 1), frame_size=None)
        assert data.classes == ["a_class", "b_class"] and data.labels == [0, 0, 1]
        assert frame_numbers(data[2][0][0]).tolist() == [0, 2, 4, 6]
        with pytest.raises(ValueError, match="not among the given classes"):
            KineticsFolder(tmp_path, "train", classes=["a_class"])
        with pytest.raises(ValueError, match="dataset folder not found"):
            KineticsFolder(tmp_path, "val")

    def test_video_lists(self, counter_tree: Path, tmp_path: Path) -> None:
        listing = tmp_path / "list.csv"
        listing.write_text(f"path,label\n{counter_tree}/jump/jump_0.avi,jump\n{counter_tree}/wave/wave_1.avi,wave\n")
        named = VideoList(listing)
        assert named.classes == ["jump", "wave"] and named.labels == [0, 1]
        relative = counter_tree / "list.txt"
        relative.write_text("jump/jump_0.avi 0\nwave/wave_0.avi 4\n")
        assert VideoList(relative).classes == ["0", "1", "2", "3", "4"]
        relative.write_text("jump/jump_0.avi 0\nwave/wave_0.avi wave\n")
        with pytest.raises(ValueError, match="all integers or all class names"):
            VideoList(relative)
        relative.write_text("jump/jump_0.avi 0\nwave/wave_0.avi 2\n")
        with pytest.raises(ValueError, match=re.escape("list.txt:2: label 2 out of range 0..1")):
            VideoList(relative, classes=["jump", "wave"])
        relative.write_text("/etc/passwd 0\n")
        with pytest.raises(ValueError, match="escapes the dataset root"):
            VideoList(relative, root=counter_tree)
        relative.write_text("jump/jump_0.avi\n")
        with pytest.raises(ValueError, match=re.escape("list.txt:1: expected '<path> <label>'")):
            VideoList(relative)


class TestClips:
    def test_frames_and_strides(self, counter_tree: Path) -> None:
        listing = counter_tree / "one.txt"
        listing.write_text("jump/jump_0.avi 0\n")
        data = VideoList(listing, sampler=eval_sampler(num_frames=8, stride=3, num_clips=4), frame_size=None)
        numbers = frame_numbers(data[0][0].numpy())
        assert numbers.shape == (4, 8)
        assert (np.diff(numbers, axis=1) == 3).all()
        assert numbers[0, 0] == 0 and numbers[-1, -1] == 59

    def test_pretraining_pairs_and_collate(self, counter_tree: Path) -> None:
        listing = counter_tree / "all.txt"
        listing.write_text("".join(f"{c}/{c}_{n}.avi {i}\n" for i, c in enumerate(("jump", "wave")) for n in range(2)))
        data = VideoList(listing, sampler=pretrain_sampler(), frame_size=(16, 16), seed=0)
        clips, labels, indices = collate_clips([data[i] for i in range(4)])
        assert (
            clips.shape == (4, 2, 16, 16, 16, 3)
            and labels.tolist() == [0, 0, 1, 1]
            and indices.tolist() == [0, 1, 2, 3]
        )
        starts = frame_numbers(clips[:, :, 0].numpy())
        assert (starts[:, 0] != starts[:, 1]).all()


class TestBadVideos:
    def make(self, counter_tree: Path) -> tuple[VideoList, dict[str, Path]]:
        good = counter_tree / "jump" / "jump_0.avi"
        bad = {
            "empty": counter_tree / "bad" / "empty.avi",
            "junk": counter_tree / "bad" / "junk.avi",
            "truncated": counter_tree / "bad" / "truncated.avi",
        }
        bad["empty"].parent.mkdir()
        bad["empty"].write_bytes(b"")
        bad["junk"].write_bytes(b"\x00garbage" * 100)
        bad["truncated"].write_bytes(good.read_bytes()[:300])
        broken_folder = write_frame_folder(counter_tree / "bad" / "frames", counter_frames(20))
        (broken_folder / "img_00003.png").write_bytes(b"not a png")
        bad["frame"] = broken_folder
        listing = counter_tree / "mixed.txt"
        names = [bad["empty"], bad["junk"], good, bad["truncated"], bad["frame"]]
        listing.write_text("".join(f"{p} 0\n" for p in names))
        return VideoList(listing, sampler=eval_sampler(4, 1, 1), frame_size=None), bad

    def test_skipped_with_one_warning_each_and_counted(self, counter_tree: Path) -> None:
        data, bad = self.make(counter_tree)
        with pytest.warns(BadVideoWarning) as caught:
            served = [data[i][2] for i in range(len(data))]
        assert served == [2, 2, 2, 2, 2]  # every bad item is served by the next good video
        assert data.num_bad == 4 and set(data.bad_videos) == set(bad.values())
        assert len(caught) == 4 and all("skipping unreadable video" in str(w.message) for w in caught)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # known bad videos are skipped silently the second time
            assert data[0][2] == 2

    def test_container_frame_counts(self, counter_tree: Path) -> None:
        full = write_video(counter_tree / "full.avi", counter_frames(100))
        (counter_tree / "half.avi").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
        listing = counter_tree / "counts.txt"
        listing.write_text("half.avi 0\nfull.avi 0\n")
        data = VideoList(listing, sampler=eval_sampler(4, 2, 3), frame_size=None)
        with pytest.warns(BadVideoWarning, match="truncated: the container reports 100 frames but only"):
            assert data[0][2] == 1  # a truncated file is skipped
        # A container that reports one frame too many (as HMDB51's do) is read within its real length.
        data = VideoList(listing, sampler=eval_sampler(4, 2, 3), frame_size=None)
        data._frame_counts.clear()
        assert frame_numbers(data[1][0].numpy())[-1, -1] == 99

    def test_a_video_deleted_after_construction(self, counter_tree: Path) -> None:
        listing = counter_tree / "two.txt"
        listing.write_text("jump/jump_0.avi 0\njump/jump_1.avi 0\n")
        data = VideoList(listing, sampler=eval_sampler(4, 1, 1))
        (counter_tree / "jump" / "jump_0.avi").unlink()
        with pytest.warns(BadVideoWarning, match="video file not found"):
            assert data[0][2] == 1

    def test_all_bad_raises(self, counter_tree: Path) -> None:
        (counter_tree / "x.avi").write_bytes(b"")
        with pytest.warns(BadVideoWarning), pytest.raises(ValueError, match="every one of the 1 videos failed"):
            VideoClipDataset([(counter_tree / "x.avi", 0)], ["a"])[0]

    def test_bad_videos_are_counted_across_workers(self, counter_tree: Path) -> None:
        data, _ = self.make(counter_tree)
        loader = DataLoader(data, batch_size=1, num_workers=2, collate_fn=collate_clips)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BadVideoWarning)
            indices = [int(batch[2]) for batch in loader]
        assert indices == [2] * 5 and data.num_bad == 4


class TestRandomness:
    def dataset(self, counter_tree: Path, **kwargs: object) -> VideoList:
        write_video(counter_tree / "long.avi", counter_frames(150))
        for i in range(8):  # eight copies: a list that names one video eight times loads it once
            shutil.copy(counter_tree / "long.avi", counter_tree / f"long{i}.avi")
        listing = counter_tree / "same.txt"
        listing.write_text("".join(f"long{i}.avi 0\n" for i in range(8)))
        return VideoList(listing, sampler=finetune_sampler(4, 1), frame_size=None, **kwargs)

    def starts(self, data: VideoList, workers: int, seed: int) -> list[int]:
        torch.manual_seed(seed)
        loader = DataLoader(data, batch_size=1, num_workers=workers, collate_fn=collate_clips)
        return [int(frame_numbers(batch[0][0, 0, 0].numpy())) for batch in loader]

    def test_workers_draw_different_clips_reproducibly(self, counter_tree: Path) -> None:
        data = self.dataset(counter_tree)
        first = self.starts(data, workers=2, seed=0)
        worker0, worker1 = first[0::2], first[1::2]  # batches alternate between the two workers
        assert worker0 != worker1
        assert self.starts(data, workers=2, seed=0) == first
        assert self.starts(data, workers=2, seed=1) != first

    def test_main_process_seed(self, counter_tree: Path) -> None:
        first, second = self.dataset(counter_tree, seed=3), self.dataset(counter_tree, seed=3)
        a = [first[i][0] for i in range(8)]
        b = [second[i][0] for i in range(8)]
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
        assert len({int(frame_numbers(x[0, 0].numpy())) for x in a}) > 1  # positions vary per item

    def test_picklable_and_spawn_workers(self, counter_tree: Path) -> None:
        data = self.dataset(counter_tree)
        clone = pickle.loads(pickle.dumps(data))
        assert clone.videos == data.videos and clone.sampler == data.sampler
        loader = DataLoader(
            data, batch_size=4, num_workers=1, multiprocessing_context="spawn", collate_fn=collate_clips
        )
        assert [batch[0].shape[0] for batch in loader] == [4, 4]


class TestCache:
    def test_cached_clips_equal_decoded_clips(self, ucf_tree: Path) -> None:
        options = {"sampler": pretrain_sampler(4, 2), "frame_size": (24, 24), "seed": 5}
        disk = UCF101(ucf_tree / "videos", ucf_tree / "splits", **options)
        memory = UCF101(ucf_tree / "videos", ucf_tree / "splits", cache=True, **options)
        held = memory.preload()
        assert held == memory.cached_bytes == len(memory) * SMALL.frames * 24 * 24 * 3
        for index in range(len(disk)):  # the same generator draws the same positions from the same frames
            assert torch.equal(disk[index][0], memory[index][0])

    def test_workers_share_the_preloaded_frames(self, counter_tree: Path) -> None:
        listing = counter_tree / "all.txt"
        listing.write_text("jump/jump_0.avi 0\nwave/wave_1.avi 1\n")
        data = VideoList(listing, sampler=eval_sampler(4, 3, 2), frame_size=None, cache=True)
        data.preload()
        for path in (counter_tree / "jump" / "jump_0.avi", counter_tree / "wave" / "wave_1.avi"):
            path.unlink()  # served from memory: the files are no longer needed
        loader = DataLoader(data, batch_size=1, num_workers=2, collate_fn=collate_clips)
        numbers = [frame_numbers(batch[0][0].numpy()).tolist() for batch in loader]
        assert numbers == [[[0, 3, 6, 9], [50, 53, 56, 59]]] * 2 and data.num_bad == 0

    def test_bad_videos_skipped_and_counted_when_preloading(self, counter_tree: Path) -> None:
        _, bad = TestBadVideos().make(counter_tree)
        cached = VideoList(counter_tree / "mixed.txt", sampler=eval_sampler(4, 1, 1), frame_size=None, cache=True)
        with pytest.warns(BadVideoWarning) as caught:
            cached.preload()
        assert cached.num_bad == 4 and set(cached.bad_videos) == set(bad.values()) and len(caught) == 4
        assert [cached[i][2] for i in range(len(cached))] == [2] * 5

    def test_memory_limit_and_misuse(self, counter_tree: Path) -> None:
        listing = counter_tree / "all.txt"
        listing.write_text("jump/jump_0.avi 0\nwave/wave_1.avi 1\n")
        data = VideoList(listing, frame_size=None, cache=True)
        with pytest.raises(ValueError, match="lower frame_size or turn the cache off"):
            data.preload(max_bytes=60 * 24 * 32 * 3)  # room for one video of two
        assert data.cached_bytes == 0
        with pytest.raises(ValueError, match="preload needs a dataset made with cache=True"):
            VideoList(listing, frame_size=None).preload()
        with pytest.raises(TypeError, match="cache must be a bool"):
            VideoList(listing, cache="yes")  # type: ignore[arg-type]
