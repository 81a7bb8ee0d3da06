"""Masking secret values in output, including a secret split across frames (pure)."""

from hypothesis import given
from hypothesis import strategies as st

from desktop.core.masking import MASK, Masker


def stream(masker: Masker, frames: list[str]) -> str:
    held, out = "", []
    for frame in frames:
        shown, held = masker.feed(held, frame)
        out.append(shown)
    return "".join(out) + masker.flush(held)


def test_whole_text_is_masked_longest_secret_first():
    m = Masker(["hunter2!", "hunter2!-long"])
    assert m.mask("a hunter2!-long b hunter2! c") == f"a {MASK} b {MASK} c"


def test_a_secret_split_across_two_frames_is_masked_and_never_shown_in_part():
    m = Masker(["s3cr3t-value"])
    shown, held = m.feed("", "password is s3cr")
    assert shown == "password is " and held == "s3cr"
    shown2, held2 = m.feed(held, "3t-value, done\n")
    assert shown2 == f"{MASK}, done\n" and held2 == ""


def test_a_held_start_that_does_not_become_a_secret_is_shown_next_frame_or_at_the_end():
    m = Masker(["abcdef"])
    shown, held = m.feed("", "xx abc")
    assert (shown, held) == ("xx ", "abc")
    assert m.feed(held, "zz") == ("abczz", "")
    assert m.flush("abc") == "abc"


def test_a_complete_secret_is_masked_even_when_its_end_starts_another():
    m = Masker(["aXa"])
    assert m.feed("", "..aXa") == (f"..{MASK}", "")


def test_a_shorter_secret_at_the_end_waits_for_a_longer_one_it_starts():
    m = Masker(["abc1", "abc123456"])
    assert stream(m, ["x abc1", "23456 y"]) == f"x {MASK} y"
    assert stream(m, ["x abc1", " y"]) == f"x {MASK} y"


def test_no_secrets_passes_text_through_unchanged():
    m = Masker(["", ""])
    assert not m
    assert m.feed("", "anything") == ("anything", "")


@given(
    secret=st.text(alphabet="ab", min_size=4, max_size=8),
    text=st.text(alphabet="abc", max_size=60),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=6),
)
def test_cut_anywhere_the_stream_never_shows_the_secret_and_equals_masking_the_whole(
    secret, text, cuts
):
    m = Masker([secret])
    whole = text[: len(text) // 2] + secret + text[len(text) // 2 :]
    points = sorted({c for c in cuts if c <= len(whole)})
    frames = [whole[a:b] for a, b in zip([0, *points], [*points, len(whole)])]
    out = stream(m, frames)
    assert secret not in out.replace(MASK, "\x00")
    assert out == m.mask(whole)
