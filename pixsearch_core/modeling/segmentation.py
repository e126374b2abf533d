"""The segmentation half of PixSearchModel (a mixin): SAM image embeddings (cached per image), spans -> mask queries
-> SAM mask decoder, box prompts, PLUM-style mask feedback, and upscaling to image resolution."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pixsearch_core.modeling.outputs import PreparedImages


def _dtype(module: torch.nn.Module) -> torch.dtype:
    p = next(module.parameters(), None)
    return torch.float32 if p is None else p.dtype  # a parameter-less encoder (dinov2's ONNX) takes float32


class SegmentationMixin:
    """Needs: sam_image_encoder, prompt_encoder, mask_decoder, mask_head, sam_transform, sam_image_size,
    mask_feedback, _sam_cache (EmbeddingCache), sam_embedding_cache (a folder or None), _disk, device."""

    # ------------------------------------------------------------ image embeddings
    def sam_image_embeddings(self, images: PreparedImages) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """-> ((B, C, h, w) SAM image embeddings, resized input sizes). Cached per image content; while training a
        trainable encoder (trainable part "sam_image_encoder", e.g. the demo's random tiny one) they are computed
        with gradients and the cache is dropped (its entries are stale once the weights move)."""
        if (
            self.training
            and torch.is_grad_enabled()
            and any(p.requires_grad for p in self.sam_image_encoder.parameters())
        ):
            self._sam_cache.clear()
            pixels, sizes = zip(*(self.sam_transform(a) for a in images.arrays))
            return self.sam_image_encoder(torch.stack(pixels).to(self.device, _dtype(self.sam_image_encoder))), list(
                sizes
            )
        todo = [i for i, k in enumerate(images.keys) if k not in self._sam_cache]
        todo = list({images.keys[i]: i for i in todo}.values())  # one encoder pass per distinct image
        fresh = {}  # key -> (embedding, size) read from disk or encoded in this call (used even if the LRU is off)
        disk = self._disk_cache()
        if disk is not None:
            for i in todo:
                hit = disk.get(images.keys[i])
                if hit is not None:
                    fresh[images.keys[i]] = (hit[0].to(self.device), hit[1])
            todo = [i for i in todo if images.keys[i] not in fresh]
        if todo:
            pixels, sizes = zip(*(self.sam_transform(images.arrays[i]) for i in todo))
            with torch.no_grad():
                emb = self.sam_image_encoder(torch.stack(pixels).to(self.device, _dtype(self.sam_image_encoder)))
            for j, i in enumerate(todo):
                fresh[images.keys[i]] = (emb[j].detach(), sizes[j])
                if disk is not None:
                    disk.put(images.keys[i], emb[j], sizes[j])
        for k, value in fresh.items():
            self._sam_cache.put(k, value)
        got = []
        for i, k in enumerate(images.keys):
            hit = fresh.get(k) or self._sam_cache.get(k)
            if hit is None:  # cached at the start of this call, then evicted by its new entries: encode directly
                pixels, size = self.sam_transform(images.arrays[i])
                with torch.no_grad():
                    hit = (
                        self.sam_image_encoder(pixels[None].to(self.device, _dtype(self.sam_image_encoder)))[0],
                        size,
                    )
            got.append(hit)
        return torch.stack([g[0] for g in got]), [g[1] for g in got]

    def _disk_cache(self):
        """The on-disk cache of a frozen encoder's embeddings (`sam_embedding_cache`), or None. Built on first use,
        when the encoder's weights are final (they are loaded after construction)."""
        if not self.sam_embedding_cache or any(p.requires_grad for p in self.sam_image_encoder.parameters()):
            return None  # off, or an encoder that trains (its embeddings change with every step)
        if self._disk is None:
            from pixsearch_core.modeling.image_cache import DiskEmbeddingCache, encoder_fingerprint

            fp = encoder_fingerprint(
                self.sam_image_encoder,
                self.sam_image_size,
                self.sam_transform.mean.flatten(),
                self.sam_transform.std.flatten(),
            )
            self._disk = DiskEmbeddingCache(self.sam_embedding_cache, fp)
        return self._disk

    # ------------------------------------------------------------ the decoder
    def _decode_masks(
        self,
        embeddings: torch.Tensor,
        image_index: torch.Tensor,
        sparse: torch.Tensor,
        dense_masks: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """embeddings (B, C, h, w); image_index (N,) which image each prompt is for; sparse (N, k, P) prompt
        tokens; dense_masks (N, 1, 4h, 4w) earlier mask logits or None -> (low-res logits (N, 1, 4h, 4w), iou (N,))."""
        dtype = _dtype(self.mask_decoder)
        n = sparse.shape[0]
        if dense_masks is None:
            h, w = self.prompt_encoder.image_embedding_size
            dense = self.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(n, -1, h, w)
        else:
            dense = self.prompt_encoder._embed_masks(dense_masks.to(_dtype(self.prompt_encoder)))
        pe = self.prompt_encoder.get_dense_pe().to(dtype)
        low = [None] * n
        iou = [None] * n
        for b in torch.unique(image_index).tolist():
            sel = torch.nonzero(image_index == b).flatten()
            m, q = self.mask_decoder(
                image_embeddings=embeddings[b : b + 1].to(dtype),
                image_pe=pe,
                sparse_prompt_embeddings=sparse[sel].to(dtype),
                dense_prompt_embeddings=dense[sel].to(dtype),
                multimask_output=False,
            )
            for j, i in enumerate(sel.tolist()):
                low[i], iou[i] = m[j], q[j, 0]
        return torch.stack(low), torch.stack(iou)

    def upscale_masks(
        self, low: torch.Tensor, input_size: tuple[int, int], original_size: tuple[int, int]
    ) -> torch.Tensor:
        """SAM's postprocess_masks: (n, 1, 4h, 4w) -> (n, H, W) logits at the original image size."""
        s = self.sam_image_size
        x = F.interpolate(low.float(), (s, s), mode="bilinear", align_corners=False)
        x = x[..., : input_size[0], : input_size[1]]
        return F.interpolate(x, original_size, mode="bilinear", align_corners=False)[:, 0]

    # ------------------------------------------------------------ spans -> masks
    def segment_spans(
        self, images: PreparedImages, hidden_states: torch.Tensor, spans: list[list[tuple[int, int]]]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """hidden_states (B, T, D), spans per row -> (per row (N_i, H_i, W_i) mask logits, per row (N_i,) iou).

        With mask feedback (PLUM), span j of a row gets span j-1's low-res logits as a dense prompt, so spans are
        decoded in rounds (all rows' first spans, then all second spans, ...); otherwise all spans in one round.
        """
        emb, input_sizes = self.sam_image_embeddings(images)
        flat = [(b, j, s, e) for b, row in enumerate(spans) for j, (s, e) in enumerate(row)]
        low_all: dict[tuple[int, int], torch.Tensor] = {}
        iou_all: dict[tuple[int, int], torch.Tensor] = {}
        rounds = (
            [flat]
            if not self.mask_feedback
            else [[f for f in flat if f[1] == j] for j in range(max((f[1] for f in flat), default=-1) + 1)]
        )
        for group in rounds:
            if not group:
                continue
            rows = torch.tensor([f[0] for f in group], device=hidden_states.device)
            span_mask = torch.zeros(len(group), hidden_states.shape[1], dtype=torch.bool, device=rows.device)
            for i, (_, _, s, e) in enumerate(group):
                span_mask[i, s:e] = True
            queries = self.mask_head(hidden_states[rows], span_mask)
            dense = None
            if self.mask_feedback and group[0][1] > 0:
                dense = torch.stack([low_all[(b, j - 1)] for b, j, _, _ in group])
            low, iou = self._decode_masks(emb, rows, queries, dense)
            for i, (b, j, _, _) in enumerate(group):
                low_all[(b, j)], iou_all[(b, j)] = low[i], iou[i]
        masks, ious = [], []
        for b, row in enumerate(spans):
            size = images.sizes[b]
            if not row:
                masks.append(emb.new_zeros((0, *size), dtype=torch.float32))
                ious.append(emb.new_zeros((0,), dtype=torch.float32))
                continue
            low = torch.stack([low_all[(b, j)] for j in range(len(row))])
            masks.append(self.upscale_masks(low, input_sizes[b], size))
            ious.append(torch.stack([iou_all[(b, j)] for j in range(len(row))]).float())
        return masks, ious

    def segment_boxes(self, images: PreparedImages, boxes: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """boxes (B, 4) xyxy in original pixels, one per image -> (B of (H_i, W_i) logits, iou (B,))."""
        emb, input_sizes = self.sam_image_embeddings(images)
        boxes = torch.stack(
            [self.sam_transform.boxes(boxes[i : i + 1].cpu(), images.sizes[i])[0] for i in range(len(images))]
        ).to(self.device)
        sparse, _ = self.prompt_encoder(points=None, boxes=boxes.to(_dtype(self.prompt_encoder)), masks=None)
        low, iou = self._decode_masks(emb, torch.arange(len(images), device=self.device), sparse)
        return [
            self.upscale_masks(low[i : i + 1], input_sizes[i], images.sizes[i])[0] for i in range(len(images))
        ], iou.float()
