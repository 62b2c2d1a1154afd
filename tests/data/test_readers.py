"""Readers on the real samples in ../shared/data: row counts, decoded values, batch shapes, and
corrupted copies (malformed rows counted, reported and skipped; wrong formats stop clearly)."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from reclayers import data as rd
from reclayers.data import DataFormatError, Preprocessor, encode


def _col(raw, name):
    v = raw[name]
    return v.to_pylist() if hasattr(v, "to_pylist") else v.tolist()


def _check_batches(source, n_rows):
    """Fit on everything, encode, and check every key/shape/dtype against the schema's batch spec."""
    pre = Preprocessor(source.schema).fit(source.chunks())
    arrays = encode(source, pre)
    assert len(arrays) == n_rows
    spec = pre.output_schema().batch_spec()
    assert set(arrays.features) == set(spec)
    for k, (shape, dtype) in spec.items():
        assert arrays.features[k].shape == (n_rows, *shape), k
        assert arrays.features[k].dtype == np.dtype(dtype), k
    assert set(arrays.labels) == set(source.schema.label_names)
    for f in pre.output_schema().categorical + pre.output_schema().sequence:
        ids = arrays.features[f.name]
        assert ids.min() >= 0 and ids.max() < f.num_buckets, f.name
    x, y = next(arrays.batches(16, seed=0))
    assert all(v.shape[0] == min(16, n_rows) for v in list(x.values()) + list(y.values()))
    return pre, arrays


def test_criteo_csv(shared_data):
    src = rd.criteo(shared_data / "deepctr/criteo_sample.txt")
    raw = src.read_all()
    assert len(raw["label"]) == 200 and src.errors.total == 0
    assert np.isnan(raw["I1"][0]) and raw["I2"][0] == 3 and raw["I3"][0] == 260.0
    assert _col(raw, "C1")[0] == "05db9164" and _col(raw, "C26")[0] == ""  # empty = missing
    assert raw["label"].sum() == 49
    _check_batches(src, 200)


def test_criteo_tsv_matches_csv(shared_data, tmp_path):
    lines = (shared_data / "deepctr/criteo_sample.txt").read_text().splitlines()[1:]
    tsv = tmp_path / "train.txt"
    tsv.write_text("\n".join(line.replace(",", "\t") for line in lines) + "\n")
    a = rd.criteo(shared_data / "deepctr/criteo_sample.txt").read_all()
    b = rd.criteo(tsv).read_all()
    assert set(a) == set(b)
    for k in a:
        if isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k])
        else:
            assert _col(a, k) == _col(b, k), k


def test_avazu(shared_data):
    src = rd.avazu(shared_data / "deepctr/avazu_sample.txt")
    raw = src.read_all()
    assert len(raw["click"]) == 100
    # 14102100 = 2014-10-21 00h, a Tuesday (weekday 1)
    assert _col(raw, "hour_of_day")[0] == "0" and _col(raw, "weekday")[0] == "1"
    assert _col(raw, "site_id")[0] == "1fbe01fe" and raw["_time"][0] == 14102100
    assert "id" not in raw
    _check_batches(src, 100)


def test_movielens_joined(shared_data):
    src = rd.movielens(shared_data / "deepctr/movielens_sample.txt")
    raw = src.read_all()
    assert len(raw["label"]) == 200
    assert _col(raw, "user_id")[0] == "3299" and raw["label"][0] == 1.0  # rating 4
    assert _col(raw, "genres")[0] == ["Comedy", "Drama"]
    pre, arrays = _check_batches(src, 200)
    assert arrays.features["genres_mask"][0].tolist() == [True, True, False, False, False, False]


def test_movielens_100k_atomic(shared_data):
    src = rd.movielens_atomic(shared_data / "ml-100k")
    raw = src.read_all()
    assert len(raw["label"]) == 100_000
    assert int(raw["label"].sum()) == 55_375  # ratings >= 4
    assert _col(raw, "user_id")[0] == "196" and _col(raw, "item_id")[0] == "242"
    assert _col(raw, "occupation")[0] == "writer" and _col(raw, "age")[0] == "49"
    assert _col(raw, "release_year")[0] == "1996" and _col(raw, "class")[0] == ["Comedy"]
    assert raw["_time"][0] == 881250949
    pre, arrays = _check_batches(src, 100_000)
    assert pre.num_buckets("user_id") == 2 + 943 and pre.num_buckets("item_id") == 2 + 1682


def test_frappe(shared_data):
    src = rd.frappe(shared_data / "frappe/frappe_x1_valid.csv", block_size=1 << 18)  # several blocks
    pre, arrays = _check_batches(src, 57_722)
    assert int(arrays.labels["label"].sum()) == 19_063
    assert src.errors.total == 0
    assert pre.num_buckets("user") == 2 + 884  # padding, OOV, the users seen in this split


def test_din_format(shared_data):
    src = rd.din(shared_data / "amazon/din_sample_data.txt")
    raw = src.read_all()
    assert len(raw["label"]) == 100
    assert _col(raw, "hist_item")[1] == ["3647", "4342", "6855", "3805"]
    assert _col(raw, "item")[1] == "4206" and _col(raw, "cate")[1] == "463"
    pre, arrays = _check_batches(src, 100)
    # shared table: the target item and its occurrences in histories get the same id
    assert pre.schema["item"].table_name == pre.schema["hist_item"].table_name == "item"
    assert arrays.features["hist_item_mask"][1].sum() == 4


def test_amazon_logs_histories(shared_data):
    src = rd.amazon_logs(shared_data / "amazon/amazon_electronics_sample.csv", max_len=5, seed=3)
    raw = src.read_all()
    # 100 events by 17 users -> 83 positives (events with history), one negative each
    assert len(raw["label"]) == 166 and raw["label"].sum() == 83
    items, hist, lab = _col(raw, "item"), _col(raw, "hist_item"), raw["label"]
    assert all(len(h) <= 5 for h in hist) and all(len(h) >= 1 for h in hist)
    for i in range(0, 166, 2):  # negative shares its positive's history, differs in target
        assert hist[i] == hist[i + 1] and lab[i] == 1 and lab[i + 1] == 0 and items[i] != items[i + 1]
    again = src.read_all()
    assert _col(again, "item") == items  # reproducible negatives
    other = rd.amazon_logs(shared_data / "amazon/amazon_electronics_sample.csv", max_len=5, seed=4).read_all()
    assert _col(other, "item") != items
    _check_batches(src, 166)


def test_alimama_dmr(shared_data):
    src = rd.alimama_dmr(shared_data / "alimama/alimama_sampled_train.txt")
    raw = src.read_all()
    assert len(raw["label"]) == 500 and raw["label"].sum() == 210
    assert _col(raw, "user")[0] == "1000043" and _col(raw, "adgroup_id")[0] == "328301"
    assert abs(raw["price"][0] - 0.98971260954681) < 1e-12
    pre, arrays = _check_batches(src, 500)
    m = arrays.features["cate_his_mask"]
    assert m[:, -1].all() or (m.sum(1) == 0).any()  # right-aligned (pad="pre"): most recent last


def test_ali_ccp_two_tasks(shared_data):
    src = rd.ali_ccp(shared_data / "ali-ccp/ali_ccp_train_sample.csv")
    raw = src.read_all()
    assert src.schema.label_names == ("click", "purchase")
    assert raw["click"].sum() == 7 and raw["purchase"].sum() == 1
    assert (raw["purchase"] <= raw["click"]).all()
    assert src.schema["D508"].kind == "dense" and src.schema["101"].kind == "categorical"
    _check_batches(src, 100)
    pre = Preprocessor(src.schema).fit(src.chunks())
    val = encode(rd.ali_ccp(shared_data / "ali-ccp/ali_ccp_val_sample.csv", schema=src.schema), pre)
    assert len(val) == 50


def test_census_income_two_tasks(shared_data):
    src = rd.census_income(shared_data / "deepctr/census-income.sample")
    raw = src.read_all()
    assert len(raw["income"]) == 200
    assert raw["age"][0] == 62 and _col(raw, "class_worker")[0] == "Private"  # whitespace stripped
    assert raw["income"][0] == 1.0 and raw["marital"][0] == 0.0  # "50000+.", married
    assert "marital_stat" not in src.schema.tables()
    _check_batches(src, 200)


# --- corrupted copies -------------------------------------------------------------------------------
# (reader, file, header lines, delimiter, numeric field index, label field index or None)
CORRUPT = {
    "criteo": (rd.criteo, "deepctr/criteo_sample.txt", 1, ",", 1, 0),
    "avazu": (rd.avazu, "deepctr/avazu_sample.txt", 1, ",", 2, 1),
    "movielens": (rd.movielens, "deepctr/movielens_sample.txt", 1, ",", 3, 2),
    "frappe": (rd.frappe, "frappe/frappe_x1_valid.csv", 1, ",", 0, 0),
    "din": (rd.din, "amazon/din_sample_data.txt", 0, ";", 4, 4),
    "amazon": (rd.amazon_logs, "amazon/amazon_electronics_sample.csv", 1, ",", 2, None),
    "alimama": (rd.alimama_dmr, "alimama/alimama_sampled_train.txt", 0, ",", 0, 266),
    "ali_ccp": (rd.ali_ccp, "ali-ccp/ali_ccp_train_sample.csv", 1, ",", 25, 0),
    "census": (rd.census_income, "deepctr/census-income.sample", 0, ",", 1, 42),
}


def _corrupt(src_path, dst_path, header, delim, num_idx, lab_idx):
    lines = src_path.read_bytes().decode().split("\n")
    a, b, c = header + 2, header + 4, header + 6  # 0-based list positions -> file lines a+1, ...

    def edit(i, fn):
        fields = lines[i].split(delim)
        fn(fields)
        lines[i] = delim.join(fields)

    lines[a] = delim.join(lines[a].split(delim)[:-1])  # one field short
    edit(b, lambda f: f.__setitem__(num_idx, "12x"))  # unparsable number
    if lab_idx is not None:
        edit(c, lambda f: f.__setitem__(lab_idx, ""))  # empty label
    dst_path.write_bytes("\n".join(lines).encode())
    return a + 1, b + 1, c + 1


@pytest.mark.parametrize("fmt", sorted(CORRUPT))
def test_corrupted_copy(fmt, shared_data, tmp_path, caplog):
    reader, rel, header, delim, num_idx, lab_idx = CORRUPT[fmt]
    good = reader(shared_data / rel)
    n_good = len(next(iter(good.read_all().values())))
    bad_path = tmp_path / (rel.split("/")[1])
    line_a, line_b, line_c = _corrupt(shared_data / rel, bad_path, header, delim, num_idx, lab_idx)
    src = reader(bad_path)
    with caplog.at_level(logging.WARNING, logger="reclayers.data"):
        raw = src.read_all()
    expected = {"field count": 1, "bad number": 1}
    if lab_idx is not None:
        expected["empty label"] = 1
    assert src.errors.counts == expected
    lines = {r: ln for _, ln, r, _ in src.errors.examples}
    assert lines["field count"] == line_a and lines["bad number"] == line_b
    if lab_idx is not None:
        assert lines["empty label"] == line_c
    n_bad = len(expected)
    n = len(next(iter(raw.values())))
    if fmt == "amazon":  # samples, not rows: just check fewer events survived
        assert n < n_good
    else:
        assert n == n_good - n_bad
    assert f"{n_bad} malformed rows skipped" in caplog.text and bad_path.name in caplog.text
    Preprocessor(src.schema).fit(src.chunks())  # the run continues


def test_movielens_atomic_corrupted(shared_data, tmp_path):
    for ext in ("user", "item"):
        shutil.copy(shared_data / f"ml-100k/ml-100k.{ext}", tmp_path / f"ml-100k.{ext}")
    _corrupt(shared_data / "ml-100k/ml-100k.inter", tmp_path / "ml-100k.inter", 1, "\t", 3, 2)
    src = rd.movielens_atomic(tmp_path)
    raw = src.read_all()
    assert src.errors.counts == {"field count": 1, "bad number": 1, "empty label": 1}
    assert len(raw["label"]) == 100_000 - 3


@pytest.mark.parametrize("reader,rel", [
    (rd.avazu, "deepctr/criteo_sample.txt"),
    (rd.alimama_dmr, "amazon/din_sample_data.txt"),
    (rd.din, "deepctr/avazu_sample.txt"),
    (rd.census_income, "frappe/frappe_x1_valid.csv"),
    (rd.ali_ccp, "deepctr/movielens_sample.txt"),
])
def test_wrong_format_names_file_and_line(reader, rel, shared_data):
    with pytest.raises(DataFormatError, match=rf"{rel.split('/')[1]}:1: not the declared format"):
        list(reader(shared_data / rel).chunks())


def test_criteo_tsv_declared_but_csv(shared_data):
    with pytest.raises(DataFormatError, match=r"criteo_sample.txt:1: .*expected 40 tab-separated fields"):
        list(rd.criteo(shared_data / "deepctr/criteo_sample.txt", fmt="tsv").chunks())


def test_line_numbers_exact_across_small_blocks(shared_data, tmp_path):
    """Malformed rows in later blocks (each parsed multi-threaded, then re-parsed on one thread
    only when it had a wrong field count) keep the file line numbers of a one-block read."""
    bad = tmp_path / "criteo.txt"
    _corrupt(shared_data / "deepctr/criteo_sample.txt", bad, 1, ",", 1, 0)
    lines = bad.read_text().split("\n")
    lines[150] = "1,2,3"  # one more short row, far from the first block
    fields = lines[170].split(",")
    lines[170] = ",".join(fields[:1] + ["nan"] + fields[2:])  # non-finite text: rejected by the regex
    bad.write_text("\n".join(lines))
    one = rd.criteo(bad)
    n_one = len(one.read_all()["label"])
    many = rd.criteo(bad, block_size=2048)
    many.errors.max_examples = one.errors.max_examples = 10
    n_many = len(many.read_all()["label"])
    one.read_all()
    assert n_many == n_one and many.errors.counts == one.errors.counts
    assert sorted(e[1:3] for e in many.errors.examples) == sorted(e[1:3] for e in one.errors.examples)
    assert {(151, "field count"), (171, "bad number")} <= {e[1:3] for e in many.errors.examples}


@pytest.mark.parametrize("text,allow_empty", [
    ("1", True), ("+.5e+3", True), ("", True), ("", False), (" 1", True), ("nan", True), ("inf", True),
    ("1e500", True), ("0x10", True), ("1_0", True), ("1,5", True), ("12x", True)])
def test_fast_number_check_never_accepts_what_the_regex_rejects(text, allow_empty):
    import re

    import pyarrow as pa

    from reclayers.data._csv import _NUMBER, _all_numbers
    exact = re.match(_NUMBER, text) is not None or (allow_empty and text == "")
    fast = _all_numbers(pa.array([text, "2"]), allow_empty=allow_empty)
    assert not fast or exact  # the fast path may only say "yes" when the regex says yes


def test_line_blocks_cut_at_line_ends(tmp_path):
    from reclayers.data._csv import _line_blocks

    path = tmp_path / "f.csv"
    path.write_bytes(b"h1,h2\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(1000)) + b"7,49")
    blocks = list(_line_blocks(path, 256, skip_first=True))
    assert len(blocks) > 10 and all(b.endswith(b"\n") for b, _ in blocks[:-1])
    assert b"".join(b for b, _ in blocks) == path.read_bytes()[6:]
    for block, line in blocks:  # each block's first line is the file line it claims
        assert block.split(b"\n")[0] == path.read_bytes().split(b"\n")[line - 1]


def test_reading_does_not_read_ahead(tmp_path):
    """Memory while streaming stays a few blocks, whatever the file size (pyarrow's own streaming
    reader buffers up to 32 blocks ahead of the consumer)."""
    import time

    import pyarrow as pa

    path = tmp_path / "c.txt"
    rd.write_criteo(path, n_rows=20_000, vocab_size=100)
    block = 1 << 16
    peak = 0
    for _ in rd.criteo(path, block_size=block).chunks():
        time.sleep(0.005)  # a slow consumer: a reader thread would run ahead
        peak = max(peak, pa.total_allocated_bytes())
    assert path.stat().st_size > 40 * block and peak < 12 * block  # measured: 3 blocks (37 before)
