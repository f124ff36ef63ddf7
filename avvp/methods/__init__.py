"""The field's methods, one folder a paper (docs/adding-a-method.md): each registers its components (backbone,
frame head, losses, label source with its per-batch rule, gating, selection rules) and declares its stages
(avvp/stages.py) from its package's __init__.py, which the registries import on first use (avvp/registry.py).
Its doc page is docs/methods/<paper>.md. Nothing outside a method's folder names it.

    ma/          MA (Wu & Yang, CVPR 2021): modality-aware label refinement, its contrast and gating
    cvcms/       the seed paper (Lin et al., NeurIPS 2021): CM-Co and CM-S
    jomold/      JoMoLD (Cheng et al., ECCV 2022): joint-modal label denoising, its estimator's stages
    cmpae/       CMPAE (Gao et al., CVPR 2023): presence-absence evidence, its losses, gating and thresholds
    mmpyramid/   MM-Pyramid (Yu et al., ACM MM 2022): the multimodal pyramid backbone
    valor/       VALOR (Lai et al., NeurIPS 2023): segment-level pseudo-labels from CLIP/CLAP teachers
"""
