"""params.yaml -> frozen dataclasses: the one place where configuration becomes objects.

Every stage reads its own section (`catalog`, `validate`, `banks`, ...). No defaults hide in code: a missing
key, an unknown key or a value of the wrong type is a `ParamsError` naming the key and the fix.
"""

from resonance.config.catalog import CatalogParams, Profile, Source, ValidateParams
from resonance.config.embedding import EmbeddingParams
from resonance.config.evaluate import EvaluateParams, HybridParams
from resonance.config.loader import ParamsError, build, check_regex, load_params, load_section
from resonance.config.serve import ListenParams, ServeParams
from resonance.config.simulate import (
    BanksParams,
    CrowdRanges,
    GridParams,
    PaRanges,
    PhoneRanges,
    Preset,
    QueriesParams,
    QuerySet,
    RoomRanges,
    SimulateParams,
    SingalongRanges,
)
from resonance.config.train import (
    TrainAugment,
    TrainConditions,
    TrainData,
    TrainerParams,
    TrainOptim,
    TrainParams,
    TrainVal,
    load_train,
    train_section,
)

__all__ = ["BanksParams", "CatalogParams", "CrowdRanges", "EmbeddingParams", "EvaluateParams", "HybridParams", "GridParams", "PaRanges", "ParamsError", "PhoneRanges",
           "ListenParams", "Preset", "Profile", "QueriesParams", "QuerySet", "RoomRanges", "ServeParams",
           "SimulateParams", "SingalongRanges",
           "Source", "TrainAugment", "TrainConditions", "TrainData", "TrainOptim", "TrainParams", "TrainVal", "TrainerParams", "ValidateParams", "build",
           "check_regex", "load_params", "load_section", "load_train", "train_section"]
