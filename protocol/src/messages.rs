//! Request and response messages. (being written)
