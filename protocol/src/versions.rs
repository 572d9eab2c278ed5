//! The API version table. (being written)
