#!/usr/bin/env bash
# The stability-lab benchmarks quoted in BENCHMARKS.md and README.md: every stabiliser over
# several seeds, on the 2-D mixtures (mode coverage, PacGAN/VEEGAN protocol) and on
# Fashion-MNIST (classifier FID at an equal wall-clock budget), where the plain GAN fails, and
# on Stacked MNIST's 1,000 modes.
#
#   benchmarks/lab.sh ring8 | grid25 | ring8-wgan | grid25-long | fmnist | fmnist-long | share-fake |
#                     failure-search | failure-search-2 | failure-confirm | failure-search-3 |
#                     failure-confirm-2 | stabiliser-sweep | stabiliser-table |
#                     failure-search-4 | failure-search-5 | failure-search-6 | failure-confirm-3 |
#                     failing-2-table | failing-2-wgan-gp | grid25-pacgan | stacked | stacked-long |
#                     conditional-diversity | conditional-aux | conditional-aux-0.1 | conditional-aux-screen |
#                     heal-table | health-corpus |
#                     tune | translation | translation-unpaired | photos | share-fake-study | all
#   (from the repository root, after `make venv`; `all` leaves out grid25-pacgan, 15 minutes a run,
#   and failing-2-wgan-gp, about an hour a run)
#
# Each part is an ordinary `steadygan compare`: re-running it skips finished runs and resumes
# interrupted ones; the report is lab/<part>/report/report.md (+ report.html, plots). A part
# longer than one machine's lease goes on on the next one from its records in the repository:
# `python benchmarks/lab_records.py save lab/<part>` here, `... restore <part>` there.
set -euo pipefail
cd "$(dirname "$0")/.."
SG=${SG:-.venv/bin/steadygan}
JOBS=${JOBS:-2}   # the 2-D runs are tiny MLPs: one thread each, two at a time, uses 2 cores best

# Settings from each method's paper where it gives one for 2-D data (WGAN-GP's toy code uses
# lambda = 0.1; weight clipping c = 0.01 from WGAN; eps = 0.01 from the GC-GAN document),
# otherwise the registry defaults (`steadygan methods`).
TOY_VARIANTS=(baseline "r1:gamma=0.1" "wgan-gp:lambda=0.1" "seed-param:lambda=0.1" "clip-value:eps=0.01"
              "clip-norm:max=1" "agc:clipping=0.01" "weight-clip:c=0.01")

PARTS="ring8 grid25 ring8-wgan grid25-long fmnist fmnist-long share-fake failure-search failure-search-2 failure-confirm failure-search-3 failure-confirm-2 stabiliser-sweep stabiliser-table failure-search-4 failure-search-5 failure-search-6 failure-confirm-3 failing-2-table failing-2-wgan-gp grid25-pacgan stacked stacked-long conditional-diversity conditional-aux conditional-aux-0.1 conditional-aux-screen heal-table health-corpus tune translation translation-unpaired photos share-fake-study all"
part=${1:-all}
if [[ " $PARTS " != *" $part "* ]]; then
  echo "unknown part '$part'; choose one of: $PARTS" >&2
  exit 2
fi
if [[ $part == ring8 || $part == all ]]; then
  $SG compare -c configs/ring8.yaml -v "${TOY_VARIANTS[@]}" --seeds 5 --steps 3000 \
      --set train.eval_every=250 -j "$JOBS" --no-progress -o lab/ring8
fi
if [[ $part == grid25 || $part == all ]]; then
  $SG compare -c configs/grid25.yaml -v "${TOY_VARIANTS[@]}" --seeds 5 --steps 3000 \
      --set train.eval_every=250 -j "$JOBS" --no-progress -o lab/grid25
fi
if [[ $part == ring8-wgan || $part == all ]]; then
  # The two WGAN variants again at their papers' schedule: 5 critic steps per generator step
  # and Adam betas (0.5, 0.9) (the runs above keep n_critic = 1 so that every variant gets
  # the same number of updates).
  $SG compare -c configs/ring8.yaml -v "wgan-gp:lambda=0.1" "weight-clip:c=0.01" --seeds 5 --steps 3000 \
      --set train.eval_every=250 train.n_critic=5 "d.betas=[0.5,0.9]" "g.betas=[0.5,0.9]" \
      -j "$JOBS" --no-progress -o lab/ring8-wgan
fi
if [[ $part == grid25-long || $part == all ]]; then
  # grid25 is far from solved after 3,000 steps: the two documents' methods, the best
  # single-step penalty and the baseline again at the config's 10,000 steps.
  $SG compare -c configs/grid25.yaml -v baseline "r1:gamma=0.1" "seed-param:lambda=0.1" "clip-value:eps=0.01" \
      --seeds 5 --steps 10000 --set train.eval_every=1000 -j "$JOBS" --no-progress -o lab/grid25-long
fi
if [[ $part == fmnist || $part == all ]]; then
  # Equal wall-clock budget (120 s of training per run, evaluation time excluded), one run at
  # a time so that every run has both cores. FID on 2,000 samples every 20 s: cheap enough to
  # draw the curve. The real-vs-real floor at that n: `steadygan eval RUN --n 2000 --metrics fid,pr`.
  $SG compare -c configs/baseline.yaml -v baseline "r1:gamma=1" "seed-param:lambda=0.1" "clip-value:eps=0.01" \
      --seeds 3 --steps 100000 --time 120 --set train.eval_seconds=20 train.eval_n=2000 "train.eval_metrics=[fid,pr]" \
      train.checkpoint_every=500 -j 1 --no-progress -o lab/fmnist --metric fid
fi
if [[ $part == fmnist-long || $part == all ]]; then
  # The same four variants at one and a half times the budget (180 s of training per run), FID every 30 s.
  $SG compare -c configs/baseline.yaml -v baseline "r1:gamma=1" "seed-param:lambda=0.1" "clip-value:eps=0.01" \
      --seeds 3 --steps 100000 --time 180 --set train.eval_seconds=30 train.eval_n=2000 "train.eval_metrics=[fid,pr]" \
      train.checkpoint_every=500 -j 1 --no-progress -o lab/fmnist-long --metric fid
fi
if [[ $part == share-fake || $part == all ]]; then
  # Sample quality per generator step with one generator forward per iteration
  # (train.share_fake=true, the default since the fast step) against two (false: the D and
  # the G update draw their own noise), the plain GAN on Fashion-MNIST, equal step budgets.
  for share in false true; do
    $SG compare -c configs/baseline.yaml -v baseline --seeds 3 --steps 1500 \
        --set train.share_fake=$share train.eval_every=500 train.eval_n=2000 "train.eval_metrics=[fid,pr]" \
        train.checkpoint_every=500 -j 1 --no-progress -o lab/share-fake-$share --metric fid
  done
fi
# Variants on baseline.yaml under a setting, into lab/failure-search/NAME (FID, recall and class
# coverage on 2,000 samples): setting_runs NAME SEEDS STEPS EVAL_EVERY JOBS VARIANT... -- [KEY=VALUE...]
setting_runs() {
  local name=$1 seeds=$2 steps=$3 every=$4 jobs=$5 variants=()
  shift 5
  while [[ $1 != -- ]]; do variants+=("$1"); shift; done
  shift
  $SG compare -c configs/baseline.yaml -v "${variants[@]}" --seeds "$seeds" --steps "$steps" \
      --set "$@" train.eval_every="$every" train.eval_n=2000 "train.eval_metrics=[fid,pr]" \
      train.checkpoint_every=$((every * 2)) -j "$jobs" --no-progress -o "lab/failure-search/$name" --metric fid
}
# The plain GAN alone under a setting: plain_gan NAME SEEDS STEPS EVAL_EVERY [KEY=VALUE...].
plain_gan() { setting_runs "$1" "$2" "$3" "$4" 1 baseline -- "${@:5}"; }
BETA1_09=("d.betas=[0.9,0.999]" "g.betas=[0.9,0.999]")
if [[ $part == failure-search || $part == all ]]; then
  # Issue 14, experiment 1, first step: where does the plain (non-saturating, unregularised)
  # GAN fail on Fashion-MNIST? One seed per candidate setting, 2,000 steps, evaluated every
  # 250 steps; the candidates that fail go on to 5 seeds (failure-confirm).
  plain_gan lr-2e-3 1 2000 250 d.lr=0.002 g.lr=0.002
  plain_gan beta1-0.9 1 2000 250 "${BETA1_09[@]}"
  plain_gan limited-1k 1 2000 250 data.limit=1000
  plain_gan g-no-norm 1 2000 250 model.g_norm=none
  plain_gan d-lr-5x 1 2000 250 d.lr=0.001
fi
if [[ $part == failure-search-2 || $part == all ]]; then
  # Second round: the default setting for reference (what class coverage a healthy run has at
  # 2,000 steps), the one candidate that failed above pushed further (beta1 = 0.9 at 5x the
  # learning rate), and limited data trained long enough for D to overfit (6,000 steps =
  # 384 passes over 1,000 images).
  plain_gan default 1 2000 250
  plain_gan beta1-0.9-lr-1e-3 1 2000 250 "${BETA1_09[@]}" d.lr=0.001 g.lr=0.001
  plain_gan limited-1k-long 1 6000 500 data.limit=1000
fi
if [[ $part == failure-confirm || $part == all ]]; then
  # The candidate the search flagged (Adam beta1 = 0.9), at 5 seeds (seed 0 is the search's run).
  plain_gan beta1-0.9 5 2000 250 "${BETA1_09[@]}"
fi
if [[ $part == failure-search-3 || $part == all ]]; then
  # Third round, harsher: the momentum that hurt most at 25x the learning rate, and BatchNorm
  # in D (the DCGAN paper's D) at 10x.
  plain_gan beta1-0.9-lr-5e-3 1 2000 250 "${BETA1_09[@]}" d.lr=0.005 g.lr=0.005
  plain_gan d-batchnorm-lr-2e-3 1 2000 250 model.d_norm=batch d.lr=0.002 g.lr=0.002
fi
if [[ $part == failure-confirm-2 || $part == all ]]; then
  # The first clear failure (beta1 = 0.9 at 5e-3: one class left by step 1,000), at 5 seeds.
  plain_gan beta1-0.9-lr-5e-3 5 2000 250 "${BETA1_09[@]}" d.lr=0.005 g.lr=0.005
fi

# Issue 14, experiment 1: every stabiliser on the first failing setting (Adam beta1 = 0.9 at
# learning rate 5e-3, where the plain GAN collapsed in 5 of 5 seeds, most by step 250).
FAILING=("${BETA1_09[@]}" d.lr=0.005 g.lr=0.005)
EVAL_SET=(train.eval_n=2000 "train.eval_metrics=[fid,pr]")
# on_failing OUT STEP_OR_TIME_ARGS... -- VARIANTS... [-- EXTRA_SETS...]: one compare on the failing setting.
on_failing() {
  local out=$1; shift
  local budget=() variants=() extra=()
  while [[ $1 != -- ]]; do budget+=("$1"); shift; done; shift
  while [[ $# -gt 0 && $1 != -- ]]; do variants+=("$1"); shift; done
  [[ $# -gt 0 ]] && { shift; extra=("$@"); }
  $SG compare -c configs/baseline.yaml -v "${variants[@]}" "${budget[@]}" \
      --set "${FAILING[@]}" "${EVAL_SET[@]}" "${extra[@]}" -j 1 --no-progress -o "$out" --metric fid --threshold 50
}
if [[ $part == stabiliser-sweep || $part == all ]]; then
  # Strength of each method with a strength: 3 values, seed 0, 600 generator steps (WGAN-GP:
  # 5 critic steps each, so 300), evaluated every 200 (100). Step budgets, so that the choice
  # does not depend on what else the machine was doing. The value with the best final FID
  # that did not collapse goes to the table.
  SWEEP=(--seed-list 0 --steps 600 --)
  EVERY=(-- train.eval_every=200 train.checkpoint_every=600)
  on_failing lab/stabiliser-sweep "${SWEEP[@]}" "seed-param:lambda=0.01" "seed-param:lambda=0.1" "seed-param:lambda=1" "${EVERY[@]}"
  on_failing lab/stabiliser-sweep "${SWEEP[@]}" "r1:gamma=0.1" "r1:gamma=1" "r1:gamma=10" "${EVERY[@]}"
  on_failing lab/stabiliser-sweep "${SWEEP[@]}" "clip-norm:max=0.1" "clip-norm:max=1" "clip-norm:max=10" "${EVERY[@]}"
  on_failing lab/stabiliser-sweep "${SWEEP[@]}" "r3gan:gamma=0.1" "r3gan:gamma=1" "r3gan:gamma=10" "${EVERY[@]}"
  on_failing lab/stabiliser-sweep "${SWEEP[@]}" "diffaugment:p=0.25" "diffaugment:p=0.5" "diffaugment:p=1" "${EVERY[@]}"
  on_failing lab/stabiliser-sweep --seed-list 0 --steps 300 -- \
      "wgan-gp:lambda=1,label=wgan-gp n5 lambda=1" "wgan-gp:lambda=10,label=wgan-gp n5 lambda=10" \
      "wgan-gp:lambda=100,label=wgan-gp n5 lambda=100" -- train.n_critic=5 train.eval_every=100 train.checkpoint_every=300
fi
if [[ $part == stabiliser-table || $part == all ]]; then
  # Every method on the failing setting, 5 seeds, an equal wall-clock budget: 60 s of training
  # per run (evaluation time excluded; the plain GAN collapses within its first 20 s), one run
  # at a time on both cores, FID/recall/class coverage on 2,000 samples every 20 s of
  # training. Strengths from stabiliser-sweep (BENCHMARKS.md lists the sweep); clip-value at
  # the GC-GAN document's 0.01 and at 0.1.
  TABLE=(--seeds 5 --time 60 --steps 100000 --)
  EVERY=(-- train.eval_seconds=20 train.checkpoint_every=500)
  # The documents' methods first (a session that runs out of time still has them). The R3GAN
  # recipe sets Adam betas (0, 0.99), which undoes the setting's beta1 = 0.9: its losses and
  # penalties are also run with the setting's Adam (rpgan r1 r2 with setting adam).
  on_failing lab/stabiliser-table "${TABLE[@]}" baseline "seed-param:lambda=1" "clip-value:eps=0.01" \
      "clip-value:eps=0.1" "r1:gamma=10" "r3gan:gamma=0.1" "clip-norm:max=0.1" spectral-norm \
      "diffaugment:p=0.5" "relativistic+r1:gamma=0.1+r2:gamma=0.1,label=rpgan r1 r2 with setting adam" \
      "${EVERY[@]}"
  # WGAN-GP with its paper's 5 critic steps per generator step: a compare of its own (n_critic
  # is a base-config key), reported beside the table.
  on_failing lab/stabiliser-table-wgan-gp "${TABLE[@]}" "wgan-gp:lambda=10,label=wgan-gp n5 lambda=10" \
      -- train.n_critic=5 train.eval_seconds=20 train.checkpoint_every=200
fi
if [[ $part == failure-search-4 || $part == all ]]; then
  # A second failing setting, of another kind than the optimiser's momentum: G without
  # normalisation (it lost most classes early at lr 2e-4, then recovered) at 10x the
  # learning rate, and D 10x faster than G.
  plain_gan g-no-norm-lr-2e-3 1 2000 250 model.g_norm=none d.lr=0.002 g.lr=0.002
  plain_gan d-lr-10x 1 2000 250 d.lr=0.002
fi
if [[ $part == failure-search-5 || $part == all ]]; then
  # Fifth round, kinds other than the optimiser's momentum: the GC-GAN document's own networks
  # (seed-gc: BatchNorm in D, batch 32) without its clipping, a 50x learning rate at the
  # default momentum, and 100 training images (10 a class).
  $SG compare -c configs/gc-gan.yaml -v baseline --seeds 1 --steps 2000 \
      --set d.clip=null g.clip=null train.eval_every=250 train.eval_n=2000 "train.eval_metrics=[fid,pr]" \
      train.checkpoint_every=500 -j 1 --no-progress -o lab/failure-search/seed-gc --metric fid
  plain_gan lr-1e-2 1 2000 250 d.lr=0.01 g.lr=0.01
  plain_gan limited-100 1 2000 250 data.limit=100
fi
if [[ $part == failure-search-6 || $part == all ]]; then
  # Sixth round: at 50x (1e-2) the plain GAN lost most classes around step 1,250 and
  # recovered; 100x and 250x the default learning rate, at the default momentum.
  plain_gan lr-2e-2 1 2000 250 d.lr=0.02 g.lr=0.02
  plain_gan lr-5e-2 1 2000 250 d.lr=0.05 g.lr=0.05
fi
if [[ $part == failure-confirm-3 || $part == all ]]; then
  # 250x the default learning rate (5e-2) at the default momentum: one class left from step
  # 1,250 on seed 0. At 5 seeds (seed 0 is the search's run).
  plain_gan lr-5e-2 5 2000 250 d.lr=0.05 g.lr=0.05
fi
if [[ $part == failing-2-table || $part == all ]]; then
  # Issue 14, experiment 1, the second failing setting (learning rate 5e-2 at the default
  # momentum; failure-confirm-3): the documents' methods and R1, 5 seeds each, at the plain
  # GAN's equal *step* budget (2,000 generator steps; it died between steps 500 and 1,250).
  # A time budget would stop a method that costs 3x per step (GP-GAN's penalty) before the
  # step at which the plain GAN fails, and count that as surviving. Strengths from section 6's
  # sweep on the first setting (not swept again); value clipping also at the GC-GAN
  # document's upper eps, 0.1. Same folder and settings as the baseline's runs, so the report
  # tables them together (the baseline's runs are skipped as finished). Two runs at a time,
  # one thread each: with a step budget the results do not depend on speed.
  # The table's other methods at section 6's strengths too (the R3GAN recipe keeps the
  # setting's learning rate and sets its own Adam betas, (0, 0.99)). One compare, so that its
  # report tables them all; finished runs are skipped.
  setting_runs lr-5e-2 5 2000 250 2 baseline "clip-value:eps=0.01" "seed-param:lambda=1" "r1:gamma=10" \
      "clip-value:eps=0.1" "clip-norm:max=0.1" spectral-norm "diffaugment:p=0.5" "r3gan:gamma=0.1" \
      -- d.lr=0.05 g.lr=0.05
fi
if [[ $part == failing-2-wgan-gp ]]; then
  # WGAN-GP with its paper's 5 critic steps on the second setting: each generator step costs
  # about 20x the plain GAN's (five critic steps, each with a double backward), about an hour
  # a run on one core, so it is a part of its own, outside `all`. Same step budget.
  setting_runs lr-5e-2-wgan-gp "${WGAN_SEEDS:-5}" 2000 250 2 "wgan-gp:lambda=10,label=wgan-gp n5 lambda=10" \
      -- d.lr=0.05 g.lr=0.05 train.n_critic=5
fi
if [[ $part == grid25-pacgan ]]; then
  # Issue 14, experiment 3, first step: PacGAN's grid25 protocol (configs/grid25-pacgan.yaml),
  # the plain GAN alone, 1 seed, to see how many steps its published baseline needs here.
  $SG compare -c configs/grid25-pacgan.yaml -v baseline --seeds 1 -j 1 --no-progress -o lab/grid25-pacgan
fi
if [[ $part == stacked || $part == all ]]; then
  # Issue 14, experiment 2: Stacked MNIST's 1000 modes (configs/stacked-fmnist.yaml, built from
  # Fashion-MNIST, the set this machine has), the plain GAN, the two documents' methods, R1 and
  # the R3GAN recipe at section 6's strengths, 3 seeds, 120 s of training per run, one run at a
  # time. One evaluation at the end: modes and KL to uniform on 26,000 samples (+ FID; KID and
  # precision/recall left out, they cost most of a 26,000-sample evaluation).
  $SG compare -c configs/stacked-fmnist.yaml -v baseline "seed-param:lambda=1" "clip-value:eps=0.01" "r1:gamma=10" \
      "r3gan:gamma=0.1" --seeds 3 --steps 100000 --time 120 --set train.eval_seconds=120 "train.eval_metrics=[fid]" \
      train.checkpoint_every=500 -j 1 --no-progress -o lab/stacked --metric Metric/modes
fi
if [[ $part == stacked-long || $part == all ]]; then
  # The plain GAN and the best method of `stacked` at an equal step budget four times as long
  # (5,000 generator steps, 1 seed), scored every 2,500 steps: does coverage keep rising?
  $SG compare -c configs/stacked-fmnist.yaml -v baseline "r3gan:gamma=0.1" --seed-list 0 --steps 5000 \
      --set train.eval_every=2500 "train.eval_metrics=[fid]" train.checkpoint_every=2500 -j 1 --no-progress \
      -o lab/stacked-long --metric Metric/modes
fi
if [[ $part == conditional-diversity || $part == all ]]; then
  # Does the ready conditional setup draw one image per class, and what fixes it? configs/
  # conditional.yaml at 3,000 steps (no time budget), 3 seeds: the setup as it is, the same
  # networks without the class (the reference its recall is held to), conditional BatchNorm
  # in G, the mode-seeking regulariser, and both. Every run is scored with 10,000 samples by
  # the one cached classifier, at 1,500 and 3,000 steps: recall, per-class recall, class
  # diversity, intra-class FID, class agreement.
  # The setup as it was then (lazy R1 alone) is pinned: the config now adds mode-seeking and
  # the class term (the answer below).
  $SG compare -c configs/conditional.yaml -v baseline unconditional cbn mode-seeking "cbn+mode-seeking" \
      --seeds 3 --steps 3000 --set train.time=null train.eval_every=1500 "train.eval_metrics=[fid,pr]" \
      "d.penalties=[r1:gamma=1,every=4]" "g.penalties=[]" -j 1 --no-progress -o lab/conditional-diversity
fi
if [[ $part == conditional-aux || $part == all ]]; then
  # Mode-seeking lifted recall above the targets and lost class agreement (0.86): its variety
  # crosses class lines. The same with AC-GAN's class term (the aux-classifier penalty, a class
  # head on D's features trained on real samples, G pushed towards its class), as above; a
  # variant replaces the penalties it names, so the config's lazy R1 is given again.
  $SG compare -c configs/conditional.yaml -v "r1:gamma=1,every=4,label=mode-seeking and aux-classifier+mode-seeking+aux-classifier" \
      --seeds 3 --steps 3000 --set train.time=null train.eval_every=1500 "train.eval_metrics=[fid,pr]" \
      -j 1 --no-progress -o lab/conditional-aux
fi
if [[ $part == conditional-aux-0.1 || $part == all ]]; then
  # The class term at a tenth of its weight (at weight 1, seed 0 had agreement 0.968 and recall
  # 0.202: the class term took back the variety mode-seeking gave). Seed 0 was run first alone
  # (the same command with --seeds 1 -o lab/conditional-aux-0.1) and copied in: compare skips it.
  mkdir -p lab/conditional-aux-0.1x3/runs
  for run in lab/conditional-aux-0.1/runs/*-s0; do
    [[ -d $run && ! -e lab/conditional-aux-0.1x3/runs/${run##*/} ]] && cp -r "$run" lab/conditional-aux-0.1x3/runs/
  done
  $SG compare -c configs/conditional.yaml \
      -v "r1:gamma=1,every=4,label=mode-seeking and aux-classifier 0.1+mode-seeking+aux-classifier:weight=0.1" \
      --seeds 3 --steps 3000 --set train.time=null train.eval_every=1500 "train.eval_metrics=[fid,pr]" \
      -j 1 --no-progress -o lab/conditional-aux-0.1x3
fi
if [[ $part == conditional-aux-screen || $part == all ]]; then
  # Does more mode-seeking lift the lowest class's recall (0.14-0.18 with weights 1 and 0.1)
  # while the class term holds agreement? Seed 0 of two stronger pairs, two runs at once.
  $SG compare -c configs/conditional.yaml \
      -v "r1:gamma=1,every=4,label=mode-seeking 2 and aux-classifier 0.1+mode-seeking:weight=2+aux-classifier:weight=0.1" \
         "r1:gamma=1,every=4,label=mode-seeking 4 and aux-classifier 0.2+mode-seeking:weight=4+aux-classifier:weight=0.2" \
      --seeds 1 --steps 3000 --set train.time=null train.eval_every=1500 "train.eval_metrics=[fid,pr]" \
      -j 2 --no-progress -o lab/conditional-aux-screen
fi
if [[ $part == heal-table || $part == all ]]; then
  # Does a run that heals itself (train.on_failure=heal, the default ladder) survive where the
  # plain GAN fails? 5 seeds, 2,000 generator steps (a step budget: steps redone after a
  # rollback are not counted; their time is), FID and recall on 2,000 samples every 250 steps.
  # The default ladder was chosen on the first failing setting; the second is held out. The
  # plain GAN and R1 (gamma 10) on the second setting at this budget are failure-confirm-3 and
  # failing-2-table; on the first, R1 runs here at the step budget (section 6 used time).
  setting_runs heal-lr-5e-2 5 2000 250 1 heal -- d.lr=0.05 g.lr=0.05
  setting_runs heal-beta1-0.9-lr-5e-3 5 2000 250 1 heal "r1:gamma=10" -- "${FAILING[@]}"
  setting_runs heal-default 5 2000 250 1 baseline heal -- train.log_every=10
  # ring8 with WGAN-GP at one critic step per generator step (lab/ring8: collapsed 5 of 5).
  $SG compare -c configs/ring8.yaml -v "wgan-gp:lambda=0.1" "wgan-gp:lambda=0.1+heal" --seeds 5 --steps 3000 \
      --set train.eval_every=250 -j "$JOBS" --no-progress -o lab/heal-ring8-wgan-gp
fi
if [[ $part == tune || $part == all ]]; then
  # Does `steadygan tune` find what the full grid finds, at a third of its compute? On both
  # failing settings: the grid of section 6's sweep (benchmarks/spaces/section6.yaml, 19 cells,
  # one seed each, no pruning: tune's grid mode), then TPE with successive halving and random
  # search without pruning, each at 6 trials (at most a third of the grid's search compute).
  # 600 generator steps per trial (section 6's sweep budget), FID/recall on 2,000 samples every
  # 120 steps; each search's best cell then on 5 seeds. Summary: benchmarks/tune_table.py.
  for kind in "beta1-0.9-lr-5e-3:${FAILING[*]}" "lr-5e-2:d.lr=0.05 g.lr=0.05"; do
    name=${kind%%:*}
    read -r -a sets <<< "${kind#*:}"
    TUNE=(-c configs/baseline.yaml --set "${sets[@]}" "${EVAL_SET[@]}" --space benchmarks/spaces/section6.yaml
          --steps 600 --finalists 1 --seeds 5 --no-progress)
    $SG tune "${TUNE[@]}" --sampler grid --pruner none -o "lab/tune/$name/grid"
    $SG tune "${TUNE[@]}" --trials 6 --sampler tpe --pruner sha -o "lab/tune/$name/tpe"
    $SG tune "${TUNE[@]}" --trials 6 --sampler random --pruner none -o "lab/tune/$name/random"
  done
fi
if [[ $part == translation || $part == all ]]; then
  # Does a stabiliser matter for paired translation (pix2pix on configs/edges2fashion.yaml)?
  # The setup as it is (non-saturating loss + the L1 term), R1, value clipping at the GC-GAN
  # document's eps, the GP-GAN document's penalty (with the L1 term kept: a variant replaces
  # g.penalties) and spectral normalisation in D; 3 seeds, 1,500 steps, FID/PR and L1/PSNR/SSIM
  # on 2,000 test pairs every 500 steps. A run fails when its L1 is no better than the identity
  # map's (collapse rule version 3) or it diverges.
  $SG compare -c configs/edges2fashion.yaml -v baseline "r1:gamma=1" "clip-value:eps=0.01" \
      "seed-param:lambda=0.1+l1-target" spectral-norm --seeds 3 --steps 1500 \
      --set train.eval_every=500 train.eval_n=2000 "train.eval_metrics=[fid,pr]" train.checkpoint_every=500 \
      -j 1 --no-progress -o lab/translation --metric fid
fi
if [[ $part == translation-unpaired || $part == all ]]; then
  # The same question for unpaired translation (CycleGAN on configs/sneakers2boots.yaml:
  # least-squares loss, cycle and identity terms, a history of 50 generated images): the setup
  # as it is, R1 on both discriminators, value clipping, the GP-GAN document's penalty (the
  # cycle and identity terms kept) and spectral normalisation; 3 seeds, 1,500 steps, scored in
  # each direction on 1,000 test samples every 500 steps. A run fails when, in either direction,
  # its target share is less than 0.05 above the identity map's (collapse rule version 5).
  $SG compare -c configs/sneakers2boots.yaml -v baseline "r1:gamma=1" "clip-value:eps=0.01" \
      "seed-param:lambda=0.1+cycle+identity" spectral-norm --seeds 3 --steps 1500 \
      --set train.eval_every=500 train.eval_n=1000 train.checkpoint_every=500 \
      -j 1 --no-progress -o lab/translation-unpaired --metric fid_AtoB
fi
if [[ $part == share-fake-study || $part == all ]]; then
  # Should one generator forward per iteration (train.share_fake=true) be the default? Two
  # forwards against one, 5 seeds each, 2,000 generator steps, FID/PR on 2,000 samples every
  # 250 steps, on five settings: the default Fashion-MNIST setting, both failing settings of
  # section 6 (does sharing change how often a run fails?), R1 at gamma 10 on the default
  # setting, and the conditional setup (its own evaluation, every 500 steps). The reports'
  # seconds columns and FID-against-seconds plots are the user's view: one run at a time,
  # nothing else on the machine.
  for kind in "default:train.log_every=10" "beta1-0.9-lr-5e-3:${FAILING[*]}" "lr-5e-2:d.lr=0.05 g.lr=0.05" \
              "r1:d.penalties=[r1:gamma=10]"; do
    name=${kind%%:*}
    read -r -a sets <<< "${kind#*:}"
    for share in false true; do
      $SG compare -c configs/baseline.yaml -v baseline --seeds 5 --steps 2000 \
          --set "${sets[@]}" train.share_fake=$share train.eval_every=250 "${EVAL_SET[@]}" train.checkpoint_every=500 \
          -j 1 --no-progress -o "lab/share-fake-study/$name-share-$share" --metric fid --threshold 40
    done
  done
  for share in false true; do
    $SG compare -c configs/conditional.yaml -v baseline --seeds 5 --steps 2000 \
        --set train.time=null train.share_fake=$share train.eval_every=500 "train.eval_metrics=[fid,pr]" \
        -j 1 --no-progress -o "lab/share-fake-study/conditional-share-$share" --metric fid --threshold 40
  done
fi
if [[ $part == photos || $part == all ]]; then
  # The GC-GAN document's own setting, 64x64x3, on real photographs: random 64-px crops of
  # scikit-image's seven photographs (first: pip install -e '.[photos]'; python benchmarks/photos.py).
  # Evaluation against crops of the held-out regions, features of the classifier trained to tell
  # the photographs apart (the proxy task). 1) The document's system as written
  # (configs/gc-gan-64.yaml: its networks, value clipping at eps 0.01), one long run for the
  # README's samples. 2) At half width (model.width=32) and 2,000 steps, 3 seeds: the plain GAN
  # (the config without its clipping), the document's value clipping, R1.
  PHOTOS=(data.name=prepared data.root=prepared/photos/large train.eval_n=2000 "train.eval_metrics=[fid,pr]")
  sets=()
  for kv in "${PHOTOS[@]}" train.eval_every=1000 train.name=gc-gan-64-photos; do sets+=(--set "$kv"); done
  $SG train -c configs/gc-gan-64.yaml --steps 4000 "${sets[@]}" --out lab/photos --no-progress
  $SG compare -c configs/gc-gan-64.yaml -v baseline "clip-value:eps=0.01" "r1:gamma=1" --seeds 3 --steps 2000 \
      --set "${PHOTOS[@]}" model.width=32 d.clip=null g.clip=null train.eval_every=500 train.checkpoint_every=500 \
      -j 1 --no-progress -o lab/photos-half-width --metric fid
fi
if [[ $part == health-corpus || $part == all ]]; then
  # Runs to score the health status on (benchmarks/health_eval.py): 1,000 steps, the monitor's
  # probe every 50 steps, evaluation every 50 (the report's rule is read at every 250 and every
  # 100 steps from them).
  # Failing kinds: the two failing settings of the plain GAN, ring8 with WGAN-GP at one critic
  # step. Healthy kinds: the default setting, R1 and R3GAN on the first failing setting, ring8
  # with R1.
  CORPUS=(train.eval_every=50 train.eval_n=2000 "train.eval_metrics=[fid,pr]" train.checkpoint_every=500)
  for kind in "beta1-0.9-lr-5e-3:${FAILING[*]}" "lr-5e-2:d.lr=0.05 g.lr=0.05" "default:train.log_every=10"; do
    name=${kind%%:*}
    read -r -a sets <<< "${kind#*:}"
    $SG compare -c configs/baseline.yaml -v baseline --seeds 8 --steps 1000 --set "${sets[@]}" "${CORPUS[@]}" \
        -j 1 --no-progress -o "lab/health-corpus/$name" --metric fid
  done
  $SG compare -c configs/baseline.yaml -v "r1:gamma=10" "r3gan:gamma=0.1" --seeds 4 --steps 1000 \
      --set "${FAILING[@]}" "${CORPUS[@]}" -j 1 --no-progress -o lab/health-corpus/stabilised --metric fid
  $SG compare -c configs/ring8.yaml -v "wgan-gp:lambda=0.1" "r1:gamma=0.1" --seeds 15 --steps 1000 \
      --set train.eval_every=50 -j "$JOBS" --no-progress -o lab/health-corpus/ring8
fi
