// Package watch turns file-system events into one Change per upload, per
// service, for auto_restart.
//
// The invariant: every change of a watched path that no ignore pattern
// matches ends up in exactly one Change, and a Change for a service is sent
// only once none of its watched paths has changed for Spec.Quiet. A binary
// written in chunks or a folder copied file by file therefore makes one
// rollout after the upload ends, not one per event.
//
// What counts as a watched path:
//   - a file in Spec.Files: only that name in its folder. Its folder is
//     watched rather than the file, because deploys replace the file (rename
//     into place, delete and rewrite) and a watch on the old inode would go
//     silent. A chmod of the file counts (chmod +x ends an upload).
//   - a folder in Spec.Files: everything below it, including folders created
//     later, and its own name in its parent folder, so that a release folder
//     renamed over it or a symlink swapped to a new release counts. A new
//     folder is itself a change, so files copied into it before its watch was
//     added are not lost. Pure chmods below a folder do not count.
//   - a path that does not exist yet: its nearest existing ancestor is watched
//     until the path appears; the appearance is a change.
//
// Kernel watches follow folders, not paths, so for a path that exists the
// folder of each symbolic link on its way, as the path spells it (the
// "current" of current/bin/web), is watched too: the link swapped to another
// release is a change of the path, and the watches move to what the path
// leads to now. Links inside a link's target are not followed that way.
//
// One goroutine, Run's, owns the fsnotify watcher, the set of watched folders,
// the bursts in progress and the timer. Set hands it new specs through a
// mailbox; Changes is the only way out.
package watch
