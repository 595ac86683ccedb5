// Every CRI RPC and its handler. The types come from the generated service
// definitions, so a missing RPC, a handler for an RPC that does not exist, or a
// handler with the wrong request or response type does not compile. `null` marks
// an RPC tscri answers UNIMPLEMENTED.
import type * as grpc from '@grpc/grpc-js';
import type { ImageServiceHandlers } from '../../generated/runtime/v1/ImageService.ts';
import type { RuntimeServiceHandlers } from '../../generated/runtime/v1/RuntimeService.ts';
import type { StreamHandler, UnaryHandler } from '../handler.ts';
import Attach from './Attach.ts';
import CheckpointContainer from './CheckpointContainer.ts';
import CheckpointPod from './CheckpointPod.ts';
import ContainerStats from './ContainerStats.ts';
import ContainerStatus from './ContainerStatus.ts';
import CreateContainer from './CreateContainer.ts';
import Exec from './Exec.ts';
import ExecSync from './ExecSync.ts';
import GetContainerEvents from './GetContainerEvents.ts';
import ImageFsInfo from './ImageFsInfo.ts';
import ImageStatus from './ImageStatus.ts';
import ListContainerStats from './ListContainerStats.ts';
import ListContainers from './ListContainers.ts';
import ListImages from './ListImages.ts';
import ListMetricDescriptors from './ListMetricDescriptors.ts';
import ListPodSandbox from './ListPodSandbox.ts';
import ListPodSandboxMetrics from './ListPodSandboxMetrics.ts';
import ListPodSandboxStats from './ListPodSandboxStats.ts';
import PodSandboxStats from './PodSandboxStats.ts';
import PodSandboxStatus from './PodSandboxStatus.ts';
import PortForward from './PortForward.ts';
import PullImage from './PullImage.ts';
import RemoveContainer from './RemoveContainer.ts';
import RemoveImage from './RemoveImage.ts';
import RemovePodSandbox from './RemovePodSandbox.ts';
import ReopenContainerLog from './ReopenContainerLog.ts';
import RestorePod from './RestorePod.ts';
import RunPodSandbox from './RunPodSandbox.ts';
import RuntimeConfig from './RuntimeConfig.ts';
import StartContainer from './StartContainer.ts';
import Status from './Status.ts';
import StopContainer from './StopContainer.ts';
import StopPodSandbox from './StopPodSandbox.ts';
import StreamContainerStats from './StreamContainerStats.ts';
import StreamContainers from './StreamContainers.ts';
import StreamImages from './StreamImages.ts';
import StreamPodSandboxMetrics from './StreamPodSandboxMetrics.ts';
import StreamPodSandboxStats from './StreamPodSandboxStats.ts';
import StreamPodSandboxes from './StreamPodSandboxes.ts';
import UpdateContainerResources from './UpdateContainerResources.ts';
import UpdatePodSandboxResources from './UpdatePodSandboxResources.ts';
import UpdateRuntimeConfig from './UpdateRuntimeConfig.ts';
import Version from './Version.ts';

type HandlerFor<T> =
  T extends grpc.handleUnaryCall<infer Req, infer Res>
    ? UnaryHandler<Req, Res>
    : T extends grpc.handleServerStreamingCall<infer Req, infer Res>
      ? StreamHandler<Req, Res>
      : never;

// The generated interfaces also carry a string index signature; only named RPCs count.
type Table<S> = { [Rpc in keyof S as string extends Rpc ? never : Rpc]-?: HandlerFor<S[Rpc]> | null };

export const runtimeHandlers: Table<RuntimeServiceHandlers> = {
  Attach: Attach,
  CheckpointContainer: CheckpointContainer,
  CheckpointPod: CheckpointPod,
  ContainerStats: ContainerStats,
  ContainerStatus: ContainerStatus,
  CreateContainer: CreateContainer,
  Exec: Exec,
  ExecSync: ExecSync,
  GetContainerEvents: GetContainerEvents,
  ListContainerStats: ListContainerStats,
  ListContainers: ListContainers,
  ListMetricDescriptors: ListMetricDescriptors,
  ListPodSandbox: ListPodSandbox,
  ListPodSandboxMetrics: ListPodSandboxMetrics,
  ListPodSandboxStats: ListPodSandboxStats,
  PodSandboxStats: PodSandboxStats,
  PodSandboxStatus: PodSandboxStatus,
  PortForward: PortForward,
  RemoveContainer: RemoveContainer,
  RemovePodSandbox: RemovePodSandbox,
  ReopenContainerLog: ReopenContainerLog,
  RestorePod: RestorePod,
  RunPodSandbox: RunPodSandbox,
  RuntimeConfig: RuntimeConfig,
  StartContainer: StartContainer,
  Status: Status,
  StopContainer: StopContainer,
  StopPodSandbox: StopPodSandbox,
  StreamContainerStats: StreamContainerStats,
  StreamContainers: StreamContainers,
  StreamPodSandboxMetrics: StreamPodSandboxMetrics,
  StreamPodSandboxStats: StreamPodSandboxStats,
  StreamPodSandboxes: StreamPodSandboxes,
  UpdateContainerResources: UpdateContainerResources,
  UpdatePodSandboxResources: UpdatePodSandboxResources,
  UpdateRuntimeConfig: UpdateRuntimeConfig,
  Version: Version,
};

export const imageHandlers: Table<ImageServiceHandlers> = {
  ImageFsInfo: ImageFsInfo,
  ImageStatus: ImageStatus,
  ListImages: ListImages,
  PullImage: PullImage,
  RemoveImage: RemoveImage,
  StreamImages: StreamImages,
};
