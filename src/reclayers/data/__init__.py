"""Data for recommendation models: schema, streaming readers, preprocessing, batches, synthetic data.

``reclayers.data`` imports only numpy and pyarrow (Keras is imported lazily by
:func:`keras_dataset`); the layers never import it. See ``docs/guides/data.md``.
"""

from reclayers.data._csv import DataFormatError, RowErrors
from reclayers.data.cache import CachedSplit, CacheError, build_cache
from reclayers.data.dataset import (
    Arrays,
    encode,
    epoch_permutation,
    keras_dataset,
    prepare,
    split_indices,
    split_stream,
    stream_batches,
)
from reclayers.data.preprocess import Preprocessor, hash_bucket, pad_sequences
from reclayers.data.readers import (
    Source,
    ali_ccp,
    alimama_dmr,
    amazon_logs,
    avazu,
    census_income,
    concat_chunks,
    criteo,
    din,
    frappe,
    movielens,
    movielens_atomic,
    read_csv,
    read_parquet,
    take_chunk,
)
from reclayers.data.schema import (
    FIRST_ID,
    OOV_ID,
    PAD_ID,
    CategoricalFeature,
    DenseFeature,
    Label,
    Schema,
    SequenceFeature,
)
from reclayers.data.synthetic import SyntheticData, auc, logloss, make_synthetic, write_criteo

__all__ = [
    "Arrays", "CacheError", "CachedSplit", "CategoricalFeature", "DataFormatError", "DenseFeature",
    "FIRST_ID", "Label", "OOV_ID", "PAD_ID", "Preprocessor", "RowErrors", "Schema", "SequenceFeature",
    "Source", "SyntheticData", "ali_ccp", "alimama_dmr", "amazon_logs", "auc", "avazu", "build_cache",
    "census_income", "concat_chunks", "criteo", "din", "encode", "epoch_permutation", "frappe",
    "hash_bucket", "keras_dataset", "logloss", "make_synthetic", "movielens", "movielens_atomic",
    "pad_sequences", "prepare", "read_csv", "read_parquet", "split_indices", "split_stream",
    "stream_batches", "take_chunk", "write_criteo",
]
