# Sourced by train.sh and tune.sh: links the training photos into a temporary folder, $photos,
# removed on exit. They are the 35 in data/photos under CC0, public domain or CC BY (the licence
# column of data/photos/README.md names neither BY-SA nor GPL), so the weights derive from no
# copyleft picture; `train --photos` reads a folder.
photos=$(mktemp -d)
trap 'rm -rf "$photos"' EXIT
grep -E '^\| `[a-z_]+\.jpg` \|' data/photos/README.md | grep -v -E 'BY-SA|GPL' |
  sed -E 's/^\| `([^`]+)`.*/\1/' | while read -r f; do ln -s "$PWD/data/photos/$f" "$photos/$f"; done
echo "training on $(ls "$photos" | wc -l) photos" >&2
