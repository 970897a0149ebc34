"""Reading ctr's pull progress: bytes done, the layers' total, the rate."""

from __future__ import annotations

from pathlib import Path

from bake.pull_progress import CtrProgressParser, human

FRAME = (
    "\x1b[2Kregistry:45443/app:v1: resolved       |++++++++++++++++++++++++++++++++++++++|\n"
    "manifest-sha256:aaaa: done           |++++++++++++++++++++++++++++++++++++++|\n"
    "layer-sha256:1111:    downloading    |+++++++++++++++-----------------------| 12.0 MiB/30.0 MiB\n"
    "layer-sha256:2222:    downloading    |+-------------------------------------| 512.0 KiB/2.0 MiB\n"
    "config-sha256:cccc:   done           |++++++++++++++++++++++++++++++++++++++|\n"
    "elapsed: 1.2 s                       total:  12.5 Mi (10.4 MiB/s)\n\x1b[6A"
)


def test_a_frame_gives_done_total_and_rate():
    p = CtrProgressParser().feed(FRAME.encode())
    assert p is not None
    assert p.done == int(12.5 * 1024**2)
    assert p.total == 32 * 1024**2
    assert p.rate == int(10.4 * 1024**2)


def test_frames_split_across_chunks_and_later_frames_win():
    parser = CtrProgressParser()
    data = FRAME.encode()
    assert parser.feed(data[:100]) is None
    assert parser.feed(data[100:]).done == int(12.5 * 1024**2)
    later = FRAME.replace("12.0 MiB/30.0", "30.0 MiB/30.0").replace("12.5 Mi (10.4", "30.5 Mi (11.0")
    p = parser.feed(later.encode())
    assert (p.done, p.total) == (int(30.5 * 1024**2), 32 * 1024**2)


def test_before_any_layer_size_the_total_is_unknown():
    p = CtrProgressParser().feed(b"elapsed: 0.1 s    total:   0.0 B (0.0 B/s)\n")
    assert p is not None and (p.done, p.total, p.rate) == (0, None, 0.0)


def test_human_sizes():
    assert [human(0), human(1536), human(5 * 1024**3)] == ["0 B", "1.5 KiB", "5.0 GiB"]


def test_plain_lines_show_progress_at_most_every_ten_seconds():
    import io

    from bake.progress import PlainReporter

    out = io.StringIO()
    rep = PlainReporter(out)
    for i in range(5):
        rep.emit("image", f"pulling: {i} MiB", pool="cpu", image="a", status="progress")
    rep.emit("image", "pulling: 0 MiB", pool="cpu", image="b", status="progress")
    rep.emit("image", "pulled in 1.0s", pool="cpu", image="a", status="done")
    lines = out.getvalue().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "[cpu] a: pulling: 0 MiB", "[cpu] b: pulling: 0 MiB", "[cpu] a: pulled in 1.0s"]
    assert len(rep.events) == 7  # every event is kept; only the lines are fewer


RECORDED_2X = Path(__file__).parent / "data" / "ctr-2.1.9-pull.txt"  # ctr 2.1.9 pulling a 200 MiB layer, no tty


def test_containerd_2x_progress_from_a_recorded_pull():
    """containerd 2.x's transfer-service display: layer sizes from the tree, bytes done from its
    total line, never backwards (2.1.9 prints the finished total without its unit)."""
    parser, seen = CtrProgressParser(), []
    data = RECORDED_2X.read_bytes()
    for i in range(0, len(data), 512):  # as SSH hands it over: arbitrary chunks
        if (p := parser.feed(data[i:i + 512])) is not None:
            seen.append((p.done, p.total, p.rate))
    mib = 1024**2
    assert any(done == 93 * mib and total == 200 * mib and rate > 200 * mib for done, total, rate in seen)
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)  # never backwards
    assert seen[-1][:2] == (200 * mib, 200 * mib)
