"""How the token losses of one optimizer step become one loss (`sft.loss_normalization`), on TRL's own hooks.

global_token_mean is TRL's SFTTrainer unchanged: the Trainer counts the supervised tokens of the whole
global batch (every micro-batch of the step, every process) as `num_items_in_batch`, TRL divides each
micro-batch's summed token loss by it, and the Trainer leaves that loss unscaled. TRL also drops the
examples that the cut at max_length leaves without a supervised token.

per_microbatch_token_mean is the authors' (HF Trainer before 4.46 under DeepSpeed ZeRO-3): each
micro-batch's loss is the mean over its own supervised tokens, the Trainer divides it by the number of
micro-batches of the step, and data parallelism averages the gradients over the processes, so the step's
gradient is the mean over micro-batches of per-micro-batch token means. The examples left without a
supervised token stay (as in the authors' batches): they count towards the steps and cost a forward pass.

A micro-batch without any supervised token is 0/0. The authors' trainer took the model's own
`CrossEntropyLoss` mean, which is nan there, but whose backward gives a zero gradient (torch's NLL backward
with a zero total weight), and HF Trainer's `logging_nan_inf_filter` kept the nan out of the logged loss:
so such a micro-batch added nothing to the step's gradient but still counted in the 1/accumulation factor.
TRL's reduction clamps the token count at 1, giving a loss of exactly 0 and the same zero gradient, so the
gradients match the authors' and no nan reaches the logs.
"""

from __future__ import annotations

import copy
from typing import Any

from trl import SFTConfig, SFTTrainer

NORMALIZATIONS = ("per_microbatch_token_mean", "global_token_mean")


class PerMicrobatchTokenMeanTrainer(SFTTrainer):  # type: ignore[misc]
    """SFTTrainer with the authors' loss normalisation; only two hooks differ."""

    # A per-micro-batch mean: Trainer.training_step divides it by the micro-batches of the step.
    loss_is_scaled_for_ga = False

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        # Without `num_items_in_batch`, TRL divides by this micro-batch's supervised tokens (clamped at 1)
        # and does not rescale by the number of processes.
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=None)

    def _prepare_dataset(
        self, dataset: Any, processing_class: Any, args: SFTConfig, packing: bool, formatting_func: Any, name: str
    ) -> Any:
        """TRL's preparation (tokens, labels) without its cut at max_length, which also drops the examples
        left without a supervised token; then the same cut (keep the start) keeping every example."""
        if packing or args.max_length is None:  # packed rows keep every example already
            return super()._prepare_dataset(dataset, processing_class, args, packing, formatting_func, name)
        uncut = copy.copy(args)  # the trainer's own args are left as they are
        uncut.max_length = None
        prepared = super()._prepare_dataset(dataset, processing_class, uncut, packing, formatting_func, name)
        length = args.max_length

        def cut(example: dict[str, Any]) -> dict[str, Any]:
            return {"input_ids": example["input_ids"][:length], "labels": example["labels"][:length]}

        return prepared.map(cut, desc=f"Truncating {name} dataset")


def trainer_class(normalization: str) -> type[SFTTrainer]:
    if normalization not in NORMALIZATIONS:  # SFTParams validates first; this guards other callers
        raise ValueError(f"unknown loss normalization {normalization!r}")
    return SFTTrainer if normalization == "global_token_mean" else PerMicrobatchTokenMeanTrainer
