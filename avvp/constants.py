"""Facts of the LLP dataset shared by every module (docs/protocol.md#llp-data)."""

# The 25 LLP classes, in the official order: a class's index is its position here.
CLASSES = [
    "Speech", "Car", "Cheering", "Dog", "Cat", "Frying_(food)", "Basketball_bounce", "Fire_alarm",
    "Chainsaw", "Cello", "Banjo", "Singing", "Chicken_rooster", "Violin_fiddle", "Vacuum_cleaner",
    "Baby_laughter", "Accordion", "Lawn_mower", "Motorcycle", "Helicopter", "Acoustic_guitar",
    "Telephone_bell_ringing", "Baby_cry_infant_cry", "Blender", "Clapping",
]
CLASS_INDEX = {name: i for i, name in enumerate(CLASSES)}
NUM_CLASSES = len(CLASSES)
NUM_SEGMENTS = 10          # ten one-second segments per video
FRAMES_PER_SEGMENT = 8     # ResNet-152 features are sampled at 8 fps

# Feature folders and per-video shapes, as released with LLP.
FEATURES = {
    "audio": ("vggish", (10, 128)),
    "visual": ("res152", (80, 2048)),
    "motion": ("r2plus1d_18", (10, 512)),
}

SPLITS = ("train", "val", "test")

# The ten LLP numbers (avvp.evaluation.metrics): two levels x five scores; as columns "segment.audio", ...
LEVELS = ("segment", "event")
KEYS = ("audio", "visual", "audio_visual", "type_av", "event_av")
COLUMNS = tuple(f"{level}.{key}" for level in LEVELS for key in KEYS)
WEAK_CSV = {"train": "AVVP_train.csv", "val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv"}
DENSE_CSV = {"audio": "AVVP_eval_audio.csv", "visual": "AVVP_eval_visual.csv"}
