//! PLACEHOLDER: to be written (see the helper's task).
