"""PixSearchModel: a LLaVA-style LMM that also segments (paper §4.2), assembled from finished parts.

    vision tower -> projector -> [image tokens spliced into the prompt] -> language model (LoRA)
                                                                            | last hidden states (B, T, D)
                                          span tagger (B/I/O) -> spans -> mask head g(.) -> mask queries
    frozen SAM image encoder (cached per image) -> prompt encoder + mask decoder -> masks (B, H, W)

See pixsearch_core/modeling/__init__.py for the decoder-facing interface.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from pixsearch_core.modeling.copy_head import CopyCache
from pixsearch_core.modeling.image_cache import EmbeddingCache
from pixsearch_core.modeling.kv_cache import GrowingCache
from pixsearch_core.modeling.outputs import MaskPrediction, PixSearchOutput, Prefix, PreparedImages, StepOutput
from pixsearch_core.modeling.preprocess import SamTransform, image_key, to_uint8_hwc
from pixsearch_core.modeling.segmentation import SegmentationMixin
from pixsearch_core.modeling.span_tagger import extract_spans
from pixsearch_core.modeling.tokens import special_token_ids

log = logging.getLogger(__name__)


class PixSearchModel(SegmentationMixin, nn.Module):
    """The segmenting LMM. Parts are built elsewhere (pixsearch_core.modeling.build) and handed in.

    Arguments:
      vision_tower: images -> (B, N, Dv) features; `input_kind` "pixels" or "sam_embedding" (frozen).
      projector: (B, N, Dv) -> (B, N, D) LM embeddings.
      language_model: a transformers causal LM (optionally PEFT/LoRA-wrapped) with hidden size D.
      span_tagger: (B, T, D) -> (B, T, 3) B/I/O logits.
      mask_head: g(.), (N, T, D) + span mask -> (N, 1, P) SAM prompt tokens.
      sam_image_encoder, prompt_encoder, mask_decoder: segment-anything parts (encoder frozen).
      tokenizer: with the PixSearch special tokens already added (tokens.add_special_tokens).
      sam_image_size: the SAM encoder's square input side (1024 for SAM, 256 for LiteMedSAM).
      mask_feedback: PLUM's loop: each span of a row gets the previous span's mask as a dense prompt.
      image_cache_size: how many SAM image embeddings to keep (LRU, keyed by image content).
      sam_embedding_cache: a local folder where the frozen SAM encoder's embeddings are kept across processes and
        runs (image_cache.DiskEmbeddingCache), or None.
      sam_pixel_mean, sam_pixel_std: the SAM encoder's input normalization on 0..255 pixels (default: SAM's).
      copy_head: an optional pointer-generator over the context (copy_head.CopyHead; None = the LM's logits).
    """

    def __init__(
        self,
        *,
        vision_tower: nn.Module,
        projector: nn.Module,
        language_model: nn.Module,
        span_tagger: nn.Module,
        mask_head: nn.Module,
        sam_image_encoder: nn.Module,
        prompt_encoder: nn.Module,
        mask_decoder: nn.Module,
        tokenizer,
        sam_image_size: int,
        mask_feedback: bool = False,
        image_cache_size: int = 32,
        sam_embedding_cache: str | None = None,
        sam_pixel_mean=None,
        sam_pixel_std=None,
        copy_head: nn.Module | None = None,
        config=None,
    ) -> None:
        super().__init__()
        self.vision_tower = vision_tower
        self.projector = projector
        self.language_model = language_model
        self.span_tagger = span_tagger
        self.mask_head = mask_head
        self.sam_image_encoder = sam_image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.tokenizer = tokenizer
        self.token_ids = special_token_ids(tokenizer)
        self.sam_image_size = sam_image_size
        self.sam_transform = SamTransform(
            sam_image_size, *(() if sam_pixel_mean is None else (sam_pixel_mean, sam_pixel_std))
        )
        self.mask_feedback = mask_feedback
        self.copy_head = copy_head
        self.config = config
        self._sam_cache = EmbeddingCache(image_cache_size)
        self.sam_embedding_cache = sam_embedding_cache
        self._disk = None

    @property
    def device(self) -> torch.device:
        return self.projector.linear_1.weight.device

    def clear_image_cache(self) -> None:
        self._sam_cache.clear()

    # ------------------------------------------------------------ images
    def prepare_images(self, images) -> PreparedImages:
        """A list of images (PIL, arrays, tensors) or a PreparedImages -> PreparedImages."""
        if isinstance(images, PreparedImages):
            return images
        if not isinstance(images, (list, tuple)):
            raise TypeError(f"images must be a list of images (one per row), got {type(images).__name__}")
        arrays = [to_uint8_hwc(im) for im in images]
        return PreparedImages(arrays, [image_key(a) for a in arrays])

    def image_features(self, images: PreparedImages) -> torch.Tensor:
        """-> (B, N, D) projected visual tokens. The tower runs without gradients (frozen in the paper) unless it is
        a trainable part (the demo's random tiny CLIP) and the model is training; the projector may train."""
        if self.vision_tower.input_kind == "sam_embedding":
            feats = self.vision_tower(self.sam_image_embeddings(images)[0])
            return self.projector(feats.detach())
        pixels = torch.stack([self.vision_tower.transform(a) for a in images.arrays]).to(self.device)
        train_tower = (
            self.training and torch.is_grad_enabled() and any(p.requires_grad for p in self.vision_tower.parameters())
        )
        with torch.set_grad_enabled(train_tower):
            feats = self.vision_tower(pixels)
        return self.projector(feats)

    # ------------------------------------------------------------ prompt embedding
    def embed_inputs(
        self, images, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, padding_side: str = "left"
    ) -> Prefix:
        """Token ids with one image placeholder per row -> embeddings with the image features spliced in.

        input_ids (B, T) (any padding side, given by attention_mask); images: one per row, or None for text-only
        rows (then no placeholder may occur). padding_side: "left" for decoding, "right" for training.
        """
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side {padding_side!r}; allowed: 'left', 'right'")
        attention_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        tok = self.language_model.get_input_embeddings()(input_ids)
        is_ph = (input_ids == self.token_ids.image_placeholder) & attention_mask.bool()
        counts = is_ph.sum(1).tolist()
        feats = None
        if images is not None:
            images = self.prepare_images(images)
            if len(images) != input_ids.shape[0]:
                raise ValueError(f"{len(images)} images for {input_ids.shape[0]} rows; give one image per row")
            bad = [b for b, c in enumerate(counts) if c != 1]
            if bad:
                raise ValueError(
                    f"rows {bad} have {[counts[b] for b in bad]} image placeholders; each row needs "
                    f"exactly one (tokens.IMAGE_PLACEHOLDER)"
                )
            feats = self.image_features(images).to(tok.dtype)
        elif any(counts):
            raise ValueError("input has image placeholders but no images were given")
        rows, positions, row_ids = [], [], []
        for b in range(input_ids.shape[0]):
            real = torch.nonzero(attention_mask[b].bool()).flatten()
            pos = torch.full((input_ids.shape[1],), -1, dtype=torch.long, device=input_ids.device)
            pos[real] = torch.arange(real.numel(), device=input_ids.device)
            if counts[b] and feats is not None:  # splice: tokens before | image features | tokens after
                t = int(torch.nonzero(is_ph[b]).flatten()[0])
                i = int(pos[t])
                rows.append(torch.cat([tok[b, real[:i]], feats[b], tok[b, real[i + 1 :]]]))
                row_ids.append(
                    torch.cat(
                        [input_ids[b, real[:i]], input_ids.new_full((feats.shape[1],), -1), input_ids[b, real[i + 1 :]]]
                    )
                )
                pos[real[i + 1 :]] += feats.shape[1] - 1
                pos[t] = i + feats.shape[1] - 1
            else:
                rows.append(tok[b, real])
                row_ids.append(input_ids[b, real])
            positions.append(pos)
        return self._pad(rows, row_ids, torch.stack(positions).to(input_ids.device), padding_side)

    def _pad(self, rows: list[torch.Tensor], row_ids: list[torch.Tensor], positions: torch.Tensor, side: str) -> Prefix:
        length = max(r.shape[0] for r in rows)
        emb = rows[0].new_zeros((len(rows), length, rows[0].shape[-1]))
        mask = torch.zeros((len(rows), length), dtype=torch.long, device=rows[0].device)
        ids = torch.full((len(rows), length), -1, dtype=torch.long, device=rows[0].device)
        for b, r in enumerate(rows):
            off = length - r.shape[0] if side == "left" else 0
            emb[b, off : off + r.shape[0]] = r
            mask[b, off : off + r.shape[0]] = 1
            ids[b, off : off + r.shape[0]] = row_ids[b]
            positions[b] = torch.where(positions[b] >= 0, positions[b] + off, positions[b])
        return Prefix(emb, mask, positions, ids)

    # ------------------------------------------------------------ stepping the LM (decoding)
    def step(
        self,
        attention_mask: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        past_key_values=None,
        use_cache: bool = True,
        token_ids: torch.Tensor | None = None,
        logits_to_keep: int = 0,
    ) -> StepOutput:
        """Run the LM on T new positions (ids or embeddings) after `past_key_values`.

        attention_mask (B, past + T) covers the cache and the new positions; zeros anywhere (left padding, or
        padding inside forced-token chunks) are skipped: positions come from its running sum. With a copy head,
        embeddings need their token_ids (B, T) (-1 for image features; Prefix.token_ids). logits_to_keep=k > 0
        returns the logits of the last k positions only (a decoder needs 1: the vocabulary projection of every
        position of a prefix or evidence chunk is a large share of its cost); hidden_states stay (B, T, D).
        A new cache is a `GrowingCache` (appends in place instead of copying the cache every step).
        """
        new = input_ids.shape[1] if input_ids is not None else inputs_embeds.shape[1]
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -new:]
        lm_cache = past_key_values.lm_cache if isinstance(past_key_values, CopyCache) else past_key_values
        if lm_cache is None and use_cache:
            lm_cache = GrowingCache()
        out = self.language_model(
            input_ids=input_ids,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=lm_cache,
            use_cache=use_cache,
            output_hidden_states=True,
            logits_to_keep=logits_to_keep if self.copy_head is None else 0,  # the copy head mixes every position
        )
        logits, hidden, cache = out.logits, out.hidden_states[-1], out.past_key_values
        if self.copy_head is not None:
            ids = input_ids if input_ids is not None else token_ids
            if ids is None:
                raise ValueError("a model with a copy head needs token_ids with inputs_embeds")
            past = past_key_values if isinstance(past_key_values, CopyCache) else None
            if past is not None:
                ids = torch.cat([past.ids, ids], dim=1)
            logits, keys = self.copy_head(logits, hidden, ids, attention_mask, None if past is None else past.keys)
            cache = CopyCache(cache, keys, ids) if use_cache else None
            logits = logits[:, -logits_to_keep:] if logits_to_keep else logits
        return StepOutput(logits, hidden, cache, attention_mask)

    def start(
        self, images, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, logits_to_keep: int = 0
    ) -> StepOutput:
        """Encode the image(s) and prompt once (left-padded) and run the LM over the prefix, returning the cache."""
        prefix = self.embed_inputs(images, input_ids, attention_mask, padding_side="left")
        return self.step(
            prefix.attention_mask,
            inputs_embeds=prefix.inputs_embeds,
            token_ids=prefix.token_ids,
            logits_to_keep=logits_to_keep,
        )

    def append_tokens(
        self, state: StepOutput, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> StepOutput:
        """Feed tokens (generated or forced evidence, (B, k)) to the live cache; attention_mask (B, k) marks the
        real ones (rows with fewer forced tokens pad with zeros). Returns the new state (logits for the k)."""
        new_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(input_ids.device)
        full = torch.cat([state.attention_mask, new_mask.to(state.attention_mask.dtype)], dim=1)
        return self.step(full, input_ids=input_ids, past_key_values=state.past_key_values)

    # ------------------------------------------------------------ training forward
    def _lm_text_states(self, prefix: Prefix, teacher: bool = False):
        run = lambda: self.language_model(
            inputs_embeds=prefix.inputs_embeds,  # noqa: E731
            attention_mask=prefix.attention_mask,
            use_cache=False,
            output_hidden_states=True,
        )
        if teacher:
            with torch.no_grad(), self.language_model.disable_adapter():
                out = run()
        else:
            out = run()
        idx = prefix.text_positions.clamp(min=0)
        logits = out.logits
        if self.copy_head is not None and not teacher:
            logits, _ = self.copy_head(logits, out.hidden_states[-1], prefix.token_ids, prefix.attention_mask)
        hidden = out.hidden_states[-1].gather(1, idx[..., None].expand(-1, -1, out.hidden_states[-1].shape[-1]))
        if teacher:
            return None, hidden
        return logits.gather(1, idx[..., None].expand(-1, -1, logits.shape[-1])), hidden

    def has_teacher(self) -> bool:
        """True when the LM has LoRA adapters that can be switched off to give frozen teacher states (Eq. 8)."""
        return hasattr(self.language_model, "disable_adapter")

    def forward(
        self,
        images,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        span_tags: torch.Tensor | None = None,
        with_teacher: bool = False,
    ) -> PixSearchOutput:
        """Teacher-forced pass for training. input_ids (B, T) right-padded with one placeholder per row.

        span_tags (B, T) gold B/I/O (-100 ignored) choose the spans to segment; without them the tagger's own
        predictions do. with_teacher adds the frozen base LM's hidden states (LoRA off) for the KL term.
        """
        attention_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        images = self.prepare_images(images) if images is not None else None
        prefix = self.embed_inputs(images, input_ids, attention_mask, padding_side="right")
        logits, hidden = self._lm_text_states(prefix)
        teacher = self._lm_text_states(prefix, teacher=True)[1] if with_teacher and self.has_teacher() else None
        text_mask = attention_mask.bool() & (input_ids != self.token_ids.image_placeholder)
        span_logits = self.span_tagger(hidden, text_mask)
        spans = extract_spans(span_tags if span_tags is not None else span_logits.argmax(-1), text_mask)
        if images is None:
            spans = [[] for _ in spans]
            masks, ious = [hidden.new_zeros((0, 0, 0)) for _ in spans], [hidden.new_zeros(0) for _ in spans]
        else:
            masks, ious = self.segment_spans(images, hidden, spans)
        return PixSearchOutput(logits, hidden, span_logits, spans, masks, ious, teacher)

    # ------------------------------------------------------------ inference segmentation
    @torch.no_grad()
    def predict_mask(
        self,
        images,
        hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        span_mask: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        threshold: float = 0.0,
        return_details: bool = False,
    ):
        """Segment, per row, the LAST entity span (or a box). Returns B boolean masks (H_i, W_i) at image size.

        Give one of: hidden_states (B, T, D) (last-layer states of the generated text, e.g. StepOutput's,
        concatenated) with attention_mask (B, T); or input_ids (B, T) (a full prompt with the image
        placeholder: the LM is run once); or boxes (B, 4) xyxy pixels. span_mask (B, T) bool picks the span's
        tokens explicitly, else the span tagger finds the spans and the last is used. A row without a span gets
        an empty mask (has_prompt False). The SAM image embedding is cached per image content.
        """
        images = self.prepare_images(images)
        if boxes is not None:
            logits, iou = self.segment_boxes(images, torch.as_tensor(boxes, dtype=torch.float32))
            has = torch.ones(len(images), dtype=torch.bool)
        else:
            hidden_states, attention_mask = self._text_states(images, hidden_states, attention_mask, input_ids)
            logits, iou, has = self._segment_last(images, hidden_states, attention_mask, span_mask)
        masks = [lg > threshold for lg in logits]
        return MaskPrediction(masks, logits, iou, has) if return_details else masks

    def _text_states(self, images, hidden_states, attention_mask, input_ids):
        if hidden_states is None:
            if input_ids is None:
                raise ValueError("predict_mask needs hidden_states, input_ids or boxes")
            attention_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
            prefix = self.embed_inputs(images, input_ids, attention_mask, padding_side="right")
            _, hidden_states = self._lm_text_states(prefix)
            attention_mask = attention_mask.bool() & (input_ids != self.token_ids.image_placeholder)
        if attention_mask is None:
            attention_mask = torch.ones(hidden_states.shape[:2], dtype=torch.bool, device=hidden_states.device)
        return hidden_states, attention_mask.bool()

    def _segment_last(self, images, hidden, attention_mask, span_mask):
        if span_mask is not None:  # explicit tokens (possibly non-contiguous): exactly those
            return self._segment_token_masks(images, hidden, span_mask.bool().to(hidden.device))
        spans = extract_spans(self.span_tagger(hidden, attention_mask).argmax(-1), attention_mask)
        if not self.mask_feedback:  # with feedback the earlier spans are decoded first and feed the last
            spans = [row[-1:] for row in spans]
        logits, ious = self.segment_spans(images, hidden, spans)
        has = torch.tensor([bool(r) for r in spans])
        out_l = [lg[-1] if lg.shape[0] else lg.new_zeros(images.sizes[b]) for b, lg in enumerate(logits)]
        out_i = torch.stack([i[-1] if i.numel() else i.new_zeros(()) for i in ious])
        return out_l, out_i, has

    def _segment_token_masks(self, images, hidden, token_masks):
        has = token_masks.any(dim=1).cpu()
        emb, input_sizes = self.sam_image_embeddings(images)
        out_l = [torch.zeros(s, device=hidden.device) for s in images.sizes]
        out_i = torch.zeros(len(images))
        rows = torch.nonzero(has).flatten()
        if rows.numel():
            queries = self.mask_head(hidden[rows.to(hidden.device)], token_masks[rows.to(token_masks.device)])
            low, iou = self._decode_masks(emb, rows.to(self.device), queries)
            for j, b in enumerate(rows.tolist()):
                out_l[b] = self.upscale_masks(low[j : j + 1], input_sizes[b], images.sizes[b])[0]
                out_i[b] = iou[j].float().cpu()
        return out_l, out_i, has
