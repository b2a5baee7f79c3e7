//! Generator (todo)
