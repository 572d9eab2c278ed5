//! Record batches. (being written)
