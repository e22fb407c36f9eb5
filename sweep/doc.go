// Package sweep runs the paper's experiments as grids: a sweep file names
// the axes (preset, generated fraction, amount of generated data, epochs,
// seed, learning-rate schedule) and the fixed settings; [Expand] multiplies
// them into cells, and each cell is one `certmix train` and one `certmix
// certify`, run by invoking the certmix binary ([Command]), so that the
// sweep depends on the commands' flags and files, not on the trainer's
// internals.
//
// A sweep directory holds
//
//	sweep.yaml           the sweep file as run (variables expanded)
//	plan.json            its cells ([Plan]), read by status and by certmix report
//	cells/NAME/          one per cell, named by its parameters, e.g. gloro-xs_e3_f0.3_aux50k_s0
//	  cell.json          the cell's parameters and the commands' flags
//	  data.json          the manifests of the datasets it used, with their xxhash64
//	  train/             certmix train --out (checkpoints, metrics.jsonl), or an
//	                     external trainer's CERTMIX_OUT (state_dict.npz, its
//	                     checkpoint, sampler.sock while it runs) and the
//	                     last.safetensors certmix import made of it
//	  certify/           certmix certify --out (summary.json, report.json, radii.csv, plots)
//	  log                the commands' output, every attempt appended
//	  running, failed    markers of an attempt under way, or of one that failed
//	  done               written last, atomically: the cell has finished
//	slurm/N/             one per sbatch: job.sh, submission.json, the array tasks' logs
//
// What it guarantees, and the tests that show it:
//
//   - A cell is named by its parameters and never run twice: a cell with a
//     done marker is skipped; a cell directory run with other settings than
//     the file now gives it is refused ([ErrChanged]), never mixed
//     (TestExpand, TestCellNames, TestSkipIfDone, TestChangedSettingsRefused);
//     a cell is locked while a process runs it (TestCellLock).
//   - An interrupted cell resumes from its checkpoint (train --resume), and
//     a sweep killed mid-run and run again ends with the results of an
//     uninterrupted one (TestResumeArgs here; TestSweepKilledResumes in
//     tools/certmix with the real binary).
//   - Every cell records the checksums of its data's manifests, and a cell
//     whose data changed between attempts is refused ([ErrDataChanged])
//     (TestDataRecorded).
//   - One sweep file runs locally ([Local], --parallel) or on Slurm ([Slurm]:
//     one job array, a task per cell, resources from the file); [Status]
//     tells each cell's state (TestStatus; TestSweepOnSlurm in tools/certmix
//     on a real one-node cluster, see .ci/slurm).
//   - A grid may train its cells with an external command ([Trainer], e.g.
//     clients/python/train_gloro.py on GPUs) fed by sampler servers that
//     live as long as the cell, in N ranks with the environment of
//     [TrainerVars]; its state dict is imported and certified as any
//     cell's, a failing trainer leaves a failed cell and stopped servers
//     (TestExternalCell, TestExternalTrainerFails; TestSweepPyTorchCells,
//     TestSweepPyTorchTwoRanks and TestSweepPyTorchOnSlurm in tools/certmix
//     with PyTorch; docs/external-trainers.md).
package sweep
