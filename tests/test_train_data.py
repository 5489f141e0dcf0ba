"""Packing, loss masks, length bucketing, batch order and position, SFT rendering."""

from __future__ import annotations

import pytest
import torch

from r1.data.packing import BatchStream, Example, collate_padded, pack, tokenize_records
from r1.engine.testing import tiny_tokenizer
from r1.errors import UserError
from r1.model import IGNORE_INDEX, Transformer
from r1.model.config import preset
from r1.tokenizer import ASSISTANT, EOS, THINK_OPEN, USER
from r1.train.sft import assistant_target, render_conversation

X = IGNORE_INDEX


def ex(*ids: int) -> Example:
    return Example(list(ids), list(ids))


def test_pack_segments_positions_and_boundary_labels():
    rows = pack([ex(1, 2, 3), ex(4, 5), ex(6, 7, 8, 9, 10)], seq_len=4, pad_id=0)
    assert rows.input_ids.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 0, 0]]
    assert rows.segment_ids.tolist() == [[0, 0, 0, 1], [1, 2, 2, 2], [2, 2, -1, -1]]
    assert rows.positions.tolist() == [[0, 1, 2, 0], [0, 0, 1, 2], [0, 1, 0, 1]]
    # a segment's first token is never a target (it would be predicted across the boundary); padding never is
    assert rows.labels.tolist() == [[X, 2, 3, X], [X, X, 7, 8], [X, 10, X, X]]


def test_pack_whole_examples_for_sft():
    rows = pack([ex(1, 2, 3), ex(4, 5), ex(6, 7, 8, 9, 10, 11)], seq_len=4, pad_id=0, split_documents=False)
    assert rows.input_ids.tolist() == [[1, 2, 3, 0], [4, 5, 0, 0], [6, 7, 8, 9]]  # too long: truncated
    assert rows.segment_ids.tolist() == [[0, 0, 0, -1], [1, 1, -1, -1], [2, 2, 2, 2]]


def test_packed_document_computes_as_if_alone():
    torch.manual_seed(0)
    cfg = preset("tiny", vocab_size=64, num_hidden_layers=2, num_nextn_predict_layers=0)
    model = Transformer(cfg).eval()
    a, b = [5, 6, 7, 8, 9], [10, 11, 12]
    rows = pack([ex(*a), ex(*b)], seq_len=8)
    with torch.no_grad():
        packed = model(rows.input_ids, positions=rows.positions, segment_ids=rows.segment_ids).logits
        alone = model(torch.tensor([b])).logits
    torch.testing.assert_close(packed[0, 5:8], alone[0], atol=1e-5, rtol=1e-4)


def test_tokenize_records_masks_prompt_for_response_loss():
    tok = tiny_tokenizer()
    recs = [{"prompt": "1+1=", "response": " 2"}, {"text": "hello"}, {"input_ids": [5, 6], "labels": [X, 6]}]
    resp, full, pre = tokenize_records(recs, tok, loss_on="response")
    p, r = [tok.bos_id, *tok.encode("1+1=")], [*tok.encode(" 2"), tok.eos_id]
    assert resp.input_ids == p + r and resp.labels == [X] * len(p) + r
    assert full.input_ids == [tok.bos_id, *tok.encode("hello"), tok.eos_id] == full.labels
    assert pre == Example([5, 6], [X, 6])
    (everything,) = tokenize_records(recs[:1], tok, loss_on="all")
    assert everything.labels == everything.input_ids
    with pytest.raises(UserError, match="record 0: expected a string 'text'"):
        tokenize_records([{"body": "x"}], tok)


def test_bucketing_groups_similar_lengths_and_pads_right():
    lengths = [3, 30, 4, 31, 5, 29, 6, 28]
    s = BatchStream(
        [Example(list(range(n)), list(range(n))) for n in lengths],
        seq_len=64,
        batch_size=2,
        batching="bucket",
        seed=1,
        bucket_window=4,
    )
    spreads = []
    for batch in s.epoch_batches(0):
        ls = sorted(lengths[i] for i in batch)
        spreads.append(ls[-1] - ls[0])
    assert max(spreads) <= 2
    b = collate_padded([ex(1, 2, 3), ex(4)], pad_id=0)
    assert b["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]] and b["labels"].tolist() == [[1, 2, 3], [4, X, X]]
    assert int(b["n_tokens"]) == 4


def test_batch_order_is_seeded_and_position_resumes_exactly():
    docs = [ex(*range(1, 1 + n)) for n in range(5, 45)]
    a = BatchStream(docs, seq_len=16, batch_size=4, seed=3)
    first = [a.next_batches()[0]["input_ids"] for _ in range(a.steps_per_epoch + 2)]  # crosses an epoch
    b = BatchStream(docs, seq_len=16, batch_size=4, seed=3)
    for _ in range(5):
        b.next_batches()
    c = BatchStream(docs, seq_len=16, batch_size=4, seed=3)
    c.load_state_dict(b.state_dict())
    rest = [c.next_batches()[0]["input_ids"] for _ in range(len(first) - 5)]
    assert all(torch.equal(x, y) for x, y in zip(first[5:], rest))
    assert a.state_dict()["epoch"] == 1
    other = BatchStream(docs, seq_len=16, batch_size=4, seed=4).next_batches()[0]["input_ids"]
    assert not torch.equal(other, first[0])
    # two ranks split the global batch; together they see what one process sees
    r0, r1 = (BatchStream(docs, seq_len=16, batch_size=4, seed=3).next_batches(r, 2, 1) for r in (0, 1))
    assert torch.equal(torch.cat([b["input_ids"] for b in [*r0, *r1]]), first[0]) and len(r0) == 2


def test_sft_target_keeps_reasoning_of_the_last_turn_only():
    tok = tiny_tokenizer()
    msgs = [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>\nold reasoning\n</think>\n4"},
        {"role": "user", "content": "and 3+3?"},
        {"role": "assistant", "content": "<think>\n3+3=6\n</think>\n6"},
    ]
    e = render_conversation(msgs, tok)
    text = tok.decode(e.input_ids)
    assert text.endswith(f"{USER}and 3+3?{ASSISTANT}{THINK_OPEN}\n3+3=6\n</think>\n6{EOS}")
    assert "old reasoning" not in text  # history turns lose their reasoning, as at inference
    target = [t for t, lab in zip(e.input_ids, e.labels) if lab != X]
    assert tok.decode(target) == f"3+3=6\n</think>\n6{EOS}"  # loss on the last assistant turn only
    prompt_len = e.labels.index(next(lab for lab in e.labels if lab != X))
    assert e.input_ids[:prompt_len] == tok.apply_chat_template(msgs[:-1], add_generation_prompt=True, tokenize=True)
    assert assistant_target("just 4") == "</think>\njust 4"  # no reasoning: an empty think block
    with pytest.raises(UserError, match="last message must be an assistant"):
        render_conversation(msgs[:1], tok)


def test_pretokenized_ids_outside_the_vocabulary_name_the_record():
    recs = [{"input_ids": [5, 6], "_source": "d.jsonl:1"}, {"input_ids": [5, 64], "_source": "d.jsonl:2"}]
    with pytest.raises(UserError, match=r"d\.jsonl:2: 'input_ids'\[1\] = 64 is outside the model's vocabulary"):
        tokenize_records(recs, None, vocab_size=64)
    ok = tokenize_records([{"input_ids": [5, 63], "labels": [X, 63]}], None, vocab_size=64)
    assert ok == [Example([5, 63], [X, 63])]
    with pytest.raises(UserError, match=r"record: 'labels'\[0\] = -2 is outside"):
        tokenize_records([{"input_ids": [5, 6], "labels": [-2, 6]}], None, vocab_size=64)
    with pytest.raises(UserError, match=r"'input_ids' must be a list of integers"):
        tokenize_records([{"input_ids": [5, True]}], None, vocab_size=64)
