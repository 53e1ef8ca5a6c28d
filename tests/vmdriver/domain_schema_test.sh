#!/bin/sh
# Validates every golden domain XML file against libvirt's domain schema
# with virt-xml-validate (package libvirt-clients). Exits 77, which meson
# reports as skipped, when virt-xml-validate is not installed.
#
# Usage: domain_schema_test.sh GOLDEN_DIR
set -u

golden_dir=${1:?usage: domain_schema_test.sh GOLDEN_DIR}

if ! command -v virt-xml-validate >/dev/null 2>&1; then
  echo "virt-xml-validate not found (package libvirt-clients): skipping"
  exit 77
fi

found=0
failed=0
for file in "$golden_dir"/*.xml; do
  [ -e "$file" ] || continue
  found=$((found + 1))
  if virt-xml-validate "$file" domain; then
    :
  else
    echo "FAIL: $file does not validate against libvirt's domain schema"
    failed=$((failed + 1))
  fi
done

if [ "$found" -eq 0 ]; then
  echo "FAIL: no golden files (*.xml) in $golden_dir"
  exit 1
fi
echo "$((found - failed)) of $found golden files validate"
[ "$failed" -eq 0 ]
