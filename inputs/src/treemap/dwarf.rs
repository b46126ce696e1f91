//! Addresses → DWARF compilation unit names, to group C symbols by source file.
//!
//! Only the units that hold one of the wanted addresses are read, and only their root entry
//! (no line programs): `.debug_aranges`, when present (gcc emits it), points straight at them;
//! otherwise every unit's root entry is read for its ranges.

use std::borrow::Cow;
use std::collections::HashMap;

use gimli::{EndianSlice, RunTimeEndian};
use object::{Object, ObjectSection};

type R<'a> = EndianSlice<'a, RunTimeEndian>;

/// Names of the units containing `addresses` (sorted, deduplicated), by address. `Ok(None)`
/// when the file carries no `.debug_info`.
pub(super) fn unit_names(
    file: &object::File<'_>,
    addresses: &[u64],
) -> Result<Option<HashMap<u64, String>>, String> {
    if file.section_by_name(".debug_info").is_none() {
        return Ok(None);
    }
    let endian = if file.is_little_endian() { RunTimeEndian::Little } else { RunTimeEndian::Big };
    // Compressed sections (SHF_COMPRESSED) need a decompressor this crate leaves out, and
    // report an error here: the caller falls back to grouping without DWARF.
    let sections = gimli::DwarfSections::load(|id| -> Result<Cow<'_, [u8]>, String> {
        match file.section_by_name(id.name()) {
            Some(section) => section.uncompressed_data().map_err(|e| format!("{}: {e}", id.name())),
            None => Ok(Cow::Borrowed(&[][..])),
        }
    })?;
    let dwarf = sections.borrow(|s| EndianSlice::new(s, endian));
    let mut names = HashMap::new();
    if addresses.is_empty() {
        return Ok(Some(names));
    }

    // Address → unit offset, from .debug_aranges.
    let mut wanted: HashMap<gimli::DebugInfoOffset<usize>, Vec<u64>> = HashMap::new();
    let mut headers = dwarf.debug_aranges.headers();
    let mut have_aranges = false;
    while let Ok(Some(header)) = headers.next() {
        let mut entries = header.entries();
        while let Ok(Some(entry)) = entries.next() {
            have_aranges = true;
            let range = entry.range();
            let hits = addresses_in(addresses, range.begin, range.end);
            if !hits.is_empty() {
                wanted.entry(header.debug_info_offset()).or_default().extend_from_slice(hits);
            }
        }
    }

    if have_aranges {
        for (offset, hits) in wanted {
            let Ok(header) = dwarf.debug_info.header_from_offset(offset) else { continue };
            let Ok(unit) = root_only_unit(&dwarf, header) else { continue };
            if let Some(name) = unit.name.map(|n| n.to_string_lossy().into_owned()) {
                for address in hits {
                    names.insert(address, name.clone());
                }
            }
        }
        return Ok(Some(names));
    }

    let mut units = dwarf.units();
    loop {
        let header = match units.next() {
            Ok(Some(header)) => header,
            Ok(None) => break,
            // The headers chain through the section: past a broken one nothing is found.
            Err(e) => return Err(format!("DWARF unit header: {e}")),
        };
        // A broken unit is skipped; the others still help.
        let Ok(unit) = root_only_unit(&dwarf, header) else { continue };
        let Some(name) = unit.name else { continue };
        let Ok(mut ranges) = dwarf.unit_ranges(&unit) else { continue };
        let mut name_owned: Option<String> = None;
        while let Ok(Some(range)) = ranges.next() {
            // Functions dropped by --gc-sections keep ranges starting at 0.
            if range.begin == 0 {
                continue;
            }
            for &address in addresses_in(addresses, range.begin, range.end) {
                let name = name_owned.get_or_insert_with(|| name.to_string_lossy().into_owned());
                names.entry(address).or_insert_with(|| name.clone());
            }
        }
    }
    Ok(Some(names))
}

/// The part of the sorted `addresses` within `[begin, end)`.
fn addresses_in(addresses: &[u64], begin: u64, end: u64) -> &[u64] {
    let from = addresses.partition_point(|&a| a < begin);
    let to = addresses.partition_point(|&a| a < end).max(from);
    addresses.get(from..to).unwrap_or(&[])
}

/// A unit with what its root entry says (name, bases, low_pc) but without the line program
/// that `Dwarf::unit` also parses: the names and ranges are all that is needed here, and the
/// line program headers cost as much again as the rest.
fn root_only_unit<'a>(
    dwarf: &gimli::Dwarf<R<'a>>,
    header: gimli::UnitHeader<R<'a>>,
) -> gimli::Result<gimli::Unit<R<'a>>> {
    let abbreviations = dwarf.abbreviations(&header)?;
    let mut unit = gimli::Unit {
        abbreviations,
        name: None,
        comp_dir: None,
        low_pc: 0,
        str_offsets_base: gimli::DebugStrOffsetsBase::default_for_encoding_and_file(
            header.encoding(),
            dwarf.file_type,
        ),
        addr_base: gimli::DebugAddrBase(0),
        loclists_base: gimli::DebugLocListsBase::default_for_encoding_and_file(
            header.encoding(),
            dwarf.file_type,
        ),
        rnglists_base: gimli::DebugRngListsBase::default_for_encoding_and_file(
            header.encoding(),
            dwarf.file_type,
        ),
        line_program: None,
        dwo_id: None,
        header,
    };
    let mut name = None;
    let mut low_pc = None;
    {
        let mut cursor = unit.header.entries(&unit.abbreviations);
        cursor.next_dfs()?;
        let root = cursor.current().ok_or(gimli::Error::MissingUnitDie)?;
        let mut attrs = root.attrs();
        while let Some(attr) = attrs.next()? {
            match (attr.name(), attr.value()) {
                (gimli::DW_AT_name, value) => name = Some(value),
                (gimli::DW_AT_low_pc, value) => low_pc = Some(value),
                (gimli::DW_AT_str_offsets_base, gimli::AttributeValue::DebugStrOffsetsBase(base)) => {
                    unit.str_offsets_base = base;
                }
                (
                    gimli::DW_AT_addr_base | gimli::DW_AT_GNU_addr_base,
                    gimli::AttributeValue::DebugAddrBase(base),
                ) => unit.addr_base = base,
                (
                    gimli::DW_AT_rnglists_base | gimli::DW_AT_GNU_ranges_base,
                    gimli::AttributeValue::DebugRngListsBase(base),
                ) => unit.rnglists_base = base,
                _ => {}
            }
        }
    }
    unit.name = name.and_then(|v| dwarf.attr_string(&unit, v).ok());
    if let Some(value) = low_pc
        && let Ok(Some(address)) = dwarf.attr_address(&unit, value)
    {
        unit.low_pc = address;
    }
    Ok(unit)
}
