// A TypeScript client of the mesh store (examples/python/rpc_mesh_across_hosts.py), found
// through NATS. Generate its client module from the contract, build, run:
//
//   weft contract export rpc_mesh_across_hosts:MeshStore --out mesh.json   (from examples/python)
//   weft contract codegen typescript mesh.json --out mesh_client.ts
//   weft keygen --cert client.key > client.crt
//   tsc -p . && node query_mesh.js nats://host:4222 client.key client.crt ed25519:<the store's id>
import { MeshStoreClient } from "./mesh_client";

async function main(): Promise<void> {
  const [registry, key, cert, trust] = process.argv.slice(2);
  const mesh = await MeshStoreClient.connect({ name: "mesh", registry, key, cert, trust: [trust] });
  const n = await mesh.count();                       // i64: a bigint
  const first = await mesh.vertices(0n, 4n);          // ndarray: { dtype, shape, data: Float64Array }
  const all = await mesh.vertices(0n, n);             // 24 MB in data frames
  const c = await mesh.centroid();
  const xyz = all.data as Float64Array;
  let sx = 0;
  for (let i = 0; i < xyz.length; i += 3) sx += xyz[i];
  console.log(JSON.stringify({
    count: n.toString(), first_shape: first.shape, shape: all.shape, dtype: all.dtype,
    centroid: Array.from(c.data as Float64Array), mean_x: sx / Number(n),
  }));
  await mesh.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
