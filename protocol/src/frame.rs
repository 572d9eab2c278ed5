//! Size-prefixed frames. (being written)
