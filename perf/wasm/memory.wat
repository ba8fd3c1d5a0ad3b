;; memory-read: a module with 1 MiB of linear memory (16 pages) to copy out,
;; like the vmcore program with a 1 MiB RW data section.
(module
  (memory (export "memory") 16 16)
  (func (export "main")))
