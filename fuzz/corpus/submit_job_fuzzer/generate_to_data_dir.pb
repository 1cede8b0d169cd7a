
’# A small model that visibly learns matrix completion on 2 CPU cores in a few minutes.
#   matbert-worker train --config configs/bert_matcomp_cpu.toml
#   NGPU=2 scripts/train_bert.sh (two CPU ranks)

[job]
kind = "train"
gpus = 1                # CPU ranks on a host without GPUs
max_restarts = 1

[model]
hidden_size = 128
num_hidden_layers = 4
num_attention_heads = 4
intermediate_size = 512
max_position_embeddings = 128
hidden_dropout_prob = 0.0        # small model, fresh data every step: no need to regularise
attention_probs_dropout_prob = 0.0
position_embedding_type = "absolute_2d"  # learned positions + row and column embeddings
layer_norm_position = "pre"      # trains more stably at this size

[matrix]
m = 8                   # rows
n = 8                   # columns
r = 2                   # rank
# U and V entries ~ N(1, 1) instead of the default N(0, 1). With zero-mean factors a masked
# entry has no first-order relation to the observed ones (its row and column means are
# uncorrelated with it), and BERT sits on a long plateau at the mean predictor before it
# learns the multiplicative structure: thousands of steps, far beyond a few CPU minutes.
# With a factor mean the low-rank structure has a first-order part the model picks up
# within a few hundred steps, and it then goes beyond it (docs/training.md).
factor_dist = "normal"  # or "uniform": entries factor_mean + U[-1, 1] (as in Gopalani et al.)
factor_mean = 1.0
prec = 2                # digits after the decimal point: vocab 805
n_sigma = 4
mask_prob = 0.2
mask_strategy = "mask"
loss_masked_only = true

[training]
steps = 1000
batch_size = 64
grad_accum = 1
lr = 1e-3
weight_decay = 0.01
warmup_ratio = 0.1      # warmup over the first 10% of steps (or warmup_steps = N)
schedule = "cosine"
min_lr_ratio = 0.1
clip_grad_norm = 1.0
mixed_precision = "no"
seed = 0
log_every = 25
eval_every = 250
eval_samples = 256

[checkpoint]
every = 500
keep = 2
job.kind=generategenerate.n_samples=20generate.output_dir=mine/ds