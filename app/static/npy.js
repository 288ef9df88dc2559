// NumPy's .npy format (version 1.0), the binary body /encode and /decode take and give for
// arrays: a short header (dtype, shape) and the values in C order, little-endian.

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const DESCR = { float32: "<f4", uint8: "|u1" };
const TYPES = { "<f4": Float32Array, "|u1": Uint8Array, "<u1": Uint8Array };

/** The bytes of a .npy file of `values` (a Float32Array or Uint8Array) with `shape`. */
export function toNpy(values, shape) {
  const dtype = values instanceof Float32Array ? "float32" : "uint8";
  const size = shape.reduce((a, b) => a * b, 1);
  if (size !== values.length) throw new Error(`${values.length} values do not fill shape [${shape}]`);
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(", ");
  let header = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': (${dims}), }`;
  // magic, version, header length, header: a multiple of 64 bytes, ending in a newline
  const unpadded = MAGIC.length + 4 + header.length + 1;
  header += " ".repeat((64 - (unpadded % 64)) % 64) + "\n";
  const bytes = new Uint8Array(MAGIC.length + 4 + header.length + values.byteLength);
  bytes.set(MAGIC, 0);
  bytes.set([1, 0, header.length & 0xff, header.length >> 8], MAGIC.length);
  for (let i = 0; i < header.length; i += 1) bytes[MAGIC.length + 4 + i] = header.charCodeAt(i);
  bytes.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), MAGIC.length + 4 + header.length);
  return bytes;
}

/** A .npy file's bytes (an ArrayBuffer) as { values, shape }: float32 or uint8, C order. */
export function fromNpy(buffer) {
  const bytes = new Uint8Array(buffer);
  if (!MAGIC.every((byte, i) => bytes[i] === byte)) throw new Error("not a .npy file");
  const major = bytes[6];
  const view = new DataView(buffer);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder("latin1").decode(bytes.subarray(start, start + headerLength));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? "";
  if (/'fortran_order':\s*True/.test(header)) throw new Error(".npy in Fortran order");
  const Type = TYPES[descr];
  if (!Type) throw new Error(`.npy of dtype ${descr}: only float32 and uint8 are read`);
  const shape = shapeText.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  const offset = start + headerLength;
  // copied out, so that the values are aligned whatever the header's length
  const values = new Type(buffer.slice(offset, offset + shape.reduce((a, b) => a * b, 1) * Type.BYTES_PER_ELEMENT));
  return { values, shape };
}
