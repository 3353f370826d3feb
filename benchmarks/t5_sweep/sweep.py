"""One T5 setting on the pre-tokenized numbers corpus (prep.py): greedy exact match on the
1,000 held-out numbers at each quarter of the run; prints one JSON line.

    python3 sweep.py NAME HIDDEN FF LAYERS HEADS BATCH LR STEPS CORPUS DROPOUT TIED [SEED]

Run on the GPU machine with KERAS_BACKEND=jax (run.sh starts one process per line of a
configs file; the figures are in benchmarks/RESULTS.md).
"""
import os, sys, time, json
import numpy as np
name, H, FF, L, heads, B, lr, steps, n, drop, tie = sys.argv[1:12]; seed = int(sys.argv[12]) if len(sys.argv) > 12 else 0
H, FF, L, heads, B, steps, n = map(int, (H, FF, L, heads, B, steps, n)); lr = float(lr); drop = float(drop); tie = tie == "1"
import keras, keras_hub
d = np.load(os.path.join(os.path.dirname(__file__), "data.npz"))
enc = d[f"enc{n}"].astype("int32"); lab = d[f"lab{n}"].astype("int32")
dec = np.concatenate([np.zeros((len(lab), 1), "int32"), lab[:, :-1]], 1)
x = {"encoder_token_ids": enc, "encoder_padding_mask": enc != 0, "decoder_token_ids": dec,
     "decoder_padding_mask": np.concatenate([np.ones((len(lab), 1), bool), lab[:, :-1] != 0], 1)}
sw = (lab != 0).astype("float32")
te_enc = d["te_enc"].astype("int32"); te_lab = d["te_lab"].astype("int32")
keras.utils.set_random_seed(seed)
bb = keras_hub.models.T5Backbone(vocabulary_size=int(d["vocab"]), num_layers=L, num_heads=heads, hidden_dim=H,
    intermediate_dim=FF, key_value_dim=H // heads, dropout=drop, tie_embedding_weights=tie)
lm = keras_hub.models.T5Seq2SeqLM(backbone=bb, preprocessor=None)
warm = max(1, steps // 12)
sched = keras.optimizers.schedules.CosineDecay(0.0, steps - warm, warmup_target=lr, warmup_steps=warm)
lm.compile(optimizer=keras.optimizers.AdamW(sched, global_clipnorm=1.0), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
           weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")], sampler="greedy")
def em():
    m = np.zeros((len(te_enc), 32), bool); m[:, 0] = True
    r = lm.generate({"encoder_token_ids": te_enc, "encoder_padding_mask": te_enc != 0,
                     "decoder_token_ids": np.zeros((len(te_enc), 32), "int32"), "decoder_padding_mask": m}, stop_token_ids=(1,))
    ids = np.where(np.asarray(r["decoder_padding_mask"]), np.asarray(r["decoder_token_ids"]), 0)[:, 1:]
    out = []
    for got, want in zip(ids, te_lab):
        got = list(got); got = got[:got.index(1)] if 1 in got else got
        want = list(want); want = want[:want.index(1)]
        out.append(got == want)
    return float(np.mean(out))
rng = np.random.default_rng(seed)
res = []; t0 = time.time(); done = 0
for q in range(4):
    k = steps // 4
    idx = rng.integers(0, len(enc), k * B)
    h = keras.Model.fit(lm, {kk: v[idx] for kk, v in x.items()}, lab[idx], sample_weight=sw[idx], batch_size=B, epochs=1, verbose=0, shuffle=False)
    done += k
    res.append((done, done * B, round(h.history["accuracy"][-1], 4), round(em(), 4)))
print(json.dumps({"name": name, "cfg": sys.argv[2:12], "params": lm.count_params(), "res": res, "sec": round(time.time() - t0)}), flush=True)
