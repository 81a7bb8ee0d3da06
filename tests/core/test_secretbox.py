"""Sealing values with AES-GCM bound to their context (pure)."""

import pytest

from desktop.core.secretbox import SecretBox, SecretKeyError, key_id, new_key, sealed_key_id


def test_sealed_value_opens_only_with_its_key_and_its_context():
    key = new_key()
    box = SecretBox([key])
    token = box.seal("p@ss w0rd", "job-secret:1:DB_PASSWORD")
    assert "p@ss" not in token and sealed_key_id(token) == key_id(key)
    assert box.open(token, "job-secret:1:DB_PASSWORD") == "p@ss w0rd"
    with pytest.raises(SecretKeyError, match="does not open"):
        box.open(token, "job-secret:2:DB_PASSWORD")  # a row moved to another job
    other = SecretBox([new_key()])
    with pytest.raises(SecretKeyError, match=f"sealed with key {key_id(key)}") as info:
        other.open(token, "job-secret:1:DB_PASSWORD")
    assert "p@ss" not in str(info.value)


def test_a_box_seals_with_its_first_key_and_opens_with_any():
    old, new = new_key(), new_key()
    token = SecretBox([old]).seal("v", "c")
    both = SecretBox([new, old])
    assert both.open(token, "c") == "v"
    assert sealed_key_id(both.seal("v", "c")) == key_id(new)


def test_damaged_text_and_bad_keys_give_clear_errors():
    box = SecretBox([new_key()])
    token = box.seal("v", "c")
    with pytest.raises(SecretKeyError, match="damaged"):
        box.open(token[:-4] + "AAAA", "c")
    with pytest.raises(SecretKeyError, match="not a sealed value"):
        box.open("plain text", "c")
    with pytest.raises(SecretKeyError, match="32 bytes"):
        SecretBox([b"short"])
    with pytest.raises(SecretKeyError):
        SecretBox([])
